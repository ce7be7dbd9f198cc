"""Stable id keys and exactly packed LUCID prefix keys."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from ranker import LucidKeys, RankerError, id_key, id_keys


def test_id_keys_are_stable_non_negative_and_vectorised() -> None:
    assert id_key("room-42") == id_key("room-42")
    assert id_key("room-42") != id_key("room-43")
    keys = id_keys(["a", "room-42", "ü"])
    assert keys.dtype == np.int64 and (keys >= 0).all()
    assert keys.tolist() == [id_key("a"), id_key("room-42"), id_key("ü")]
    # pinned: a key must never change between releases, or every stored row is lost
    assert id_key("room-42") == 5148656650303817469


def test_every_distinct_prefix_gets_a_distinct_key() -> None:
    keys = LucidKeys(table_id=1, levels=3, codes=4)
    codes = np.array(list(itertools.product(range(4), repeat=3)))
    packed = keys(keys.check(codes))
    prefixes = {(level, *row[: level + 1]) for row in codes.tolist() for level in range(3)}
    by_prefix = {}
    for row, row_keys in zip(codes.tolist(), packed.tolist(), strict=True):
        for level, key in enumerate(row_keys):
            assert by_prefix.setdefault((level, *row[: level + 1]), key) == key
    assert len(by_prefix) == len(prefixes) == len(set(by_prefix.values()))
    other_table = LucidKeys(table_id=2, levels=3, codes=4)(codes)
    assert not set(other_table.ravel().tolist()) & set(packed.ravel().tolist())


def test_unigram_keys_depend_on_one_level_only() -> None:
    keys = LucidKeys(table_id=1, levels=3, codes=8, mode="unigram")
    a, b = keys(np.array([[1, 2, 3], [5, 2, 3]]))
    assert a[0] != b[0] and a[1] == b[1] and a[2] == b[2]


def test_codes_out_of_range_or_a_key_too_wide_are_refused() -> None:
    keys = LucidKeys(table_id=1, levels=4, codes=64)
    with pytest.raises(RankerError, match=r"must lie in \[0, 64\)"):
        keys.check(np.array([[1, 2, 3, 64]]))
    with pytest.raises(RankerError, match="4 levels"):
        keys.check(np.array([[1, 2, 3]]))
    with pytest.raises(RankerError, match="does not fit"):
        LucidKeys(table_id=1, levels=8, codes=2**8)
