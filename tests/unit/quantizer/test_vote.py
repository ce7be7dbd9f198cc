"""Room LUCID: hierarchical per-level majority with the latest-slice tie-break."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from quantizer import QuantizerError, format_lucid, parse_lucid, room_lucid

slice_codes = st.integers(1, 4).flatmap(
    lambda levels: arrays(
        np.int64, st.tuples(st.integers(1, 30), st.just(levels)), elements=st.integers(0, 5)
    )
)


@given(slice_codes)
def test_room_code_is_the_code_of_some_slice(codes: np.ndarray) -> None:
    assert any(tuple(row) == room_lucid(codes) for row in codes.tolist())


@given(slice_codes)
def test_first_level_is_a_plain_majority(codes: np.ndarray) -> None:
    values, counts = np.unique(codes[:, 0], return_counts=True)
    assert room_lucid(codes)[0] in values[counts == counts.max()]


@given(slice_codes)
def test_each_level_is_the_majority_among_slices_sharing_the_prefix(codes: np.ndarray) -> None:
    room = room_lucid(codes)
    for level in range(codes.shape[1]):
        sharing = codes[(codes[:, :level] == room[:level]).all(axis=1), level]
        values, counts = np.unique(sharing, return_counts=True)
        assert counts[values == room[level]][0] == counts.max()


@given(slice_codes, st.randoms())
def test_vote_without_ties_ignores_slice_order(codes: np.ndarray, rnd) -> None:
    dominant = np.vstack([codes[:1]] * (len(codes) + 1) + [codes])
    order = list(range(len(dominant)))
    rnd.shuffle(order)
    shuffled = dominant[order]
    assert room_lucid(shuffled) == room_lucid(dominant) == tuple(codes[0])


def test_ties_go_to_the_latest_slice() -> None:
    assert room_lucid([[1, 2, 3], [1, 4, 5], [2, 2, 2], [2, 4, 4]]) == (2, 4, 4)
    assert room_lucid([[2, 4, 4], [2, 2, 2], [1, 4, 5], [1, 2, 3]]) == (1, 2, 3)


def test_majority_beats_recency() -> None:
    assert room_lucid([[7, 1], [7, 1], [3, 3]]) == (7, 1)


def test_empty_room_is_refused() -> None:
    with pytest.raises(QuantizerError):
        room_lucid(np.zeros((0, 4), int))


def test_lucid_text_round_trip() -> None:
    assert parse_lucid(format_lucid((12, 3, 40, 7))) == (12, 3, 40, 7)
    assert format_lucid(np.array([1, 2])) == "1-2"
    with pytest.raises(QuantizerError, match="not a LUCID"):
        parse_lucid("12-x")
