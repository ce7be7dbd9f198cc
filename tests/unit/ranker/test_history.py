"""The per-user history store: newest first, bounded, vectorised appends."""

from __future__ import annotations

import numpy as np
import pytest

from ranker import HistoryStore, RankerError


def codes(*rows: int) -> np.ndarray:
    return np.array([[r, r, r] for r in rows])


def test_reads_come_back_newest_first_and_bounded_to_h() -> None:
    store = HistoryStore(length=3, levels=3)
    store.append(np.array([7, 7]), codes(1, 2), np.array([10.0, 20.0]))
    store.append(np.array([7, 8, 7]), codes(4, 9, 3), np.array([40.0, 5.0, 30.0]))
    got = store.read(np.array([7, 8, 99]))
    assert got.codes[0, :, 0].tolist() == [4, 3, 2]  # 1 fell out; 3 (t=30) before 4 (t=40)
    assert got.ts[0].tolist() == [40.0, 30.0, 20.0]
    assert got.mask.tolist() == [[True] * 3, [True, False, False], [False] * 3]
    assert got.codes[1, 0, 0] == 9
    assert len(store) == 2


def test_one_batch_longer_than_h_keeps_the_newest() -> None:
    store = HistoryStore(length=4, levels=3)
    n = 11
    store.append(np.full(n, 5), codes(*range(n)), np.arange(n, dtype=float)[::-1].copy())
    got = store.read(np.array([5]))
    assert got.codes[0, :, 0].tolist() == [0, 1, 2, 3]  # ts reversed: code 0 is newest


def test_state_round_trip_and_forgetting() -> None:
    store = HistoryStore(length=2, levels=3, capacity=2)
    store.append(np.arange(5), codes(*range(5)), np.arange(5, dtype=float))
    restored = HistoryStore.from_state_arrays(store.state_arrays())
    users = np.arange(6)
    for a, b in zip(
        restored.read(users).__dict__.values(), store.read(users).__dict__.values(), strict=True
    ):
        np.testing.assert_array_equal(a, b)
    assert restored.forget_before(2.0) == 2
    assert restored.read(np.array([0, 1, 2])).mask[:, 0].tolist() == [False, False, True]


def test_bad_shapes_are_refused() -> None:
    store = HistoryStore(length=2, levels=3)
    with pytest.raises(RankerError, match=r"codes \(n, 3\)"):
        store.append(np.array([1]), np.array([[1, 2]]), np.array([0.0]))
