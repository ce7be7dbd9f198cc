"""The cuckoo key index behaves like a dict, whatever the keys and however it grows."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ranker import RankerError
from ranker.key_index import EMPTY, KeyIndex, check_keys

int64 = st.integers(min_value=EMPTY + 1, max_value=np.iinfo(np.int64).max)


@settings(max_examples=60, deadline=None)
@given(
    batches=st.lists(st.sets(int64, max_size=300), min_size=1, max_size=8),
    removed=st.sets(int64, max_size=50),
)
def test_index_matches_a_dict(batches: list[set[int]], removed: set[int]) -> None:
    index, model = KeyIndex(capacity=4), {}
    for batch in batches:
        fresh = np.array(sorted(set(batch) - model.keys()), dtype=np.int64)
        values = np.arange(len(model), len(model) + fresh.size, dtype=np.int64)
        index.insert(fresh, values)
        model.update(zip(fresh.tolist(), values.tolist(), strict=True))
    gone = np.array(sorted(removed), dtype=np.int64)
    present = index.remove(gone)
    assert present.tolist() == [k in model for k in gone.tolist()]
    for key in removed:
        model.pop(key, None)
    probe = np.array(sorted(model.keys() | removed), dtype=np.int64)
    assert index.get(probe, missing=-7).tolist() == [model.get(k, -7) for k in probe.tolist()]
    keys, values = index.items()
    assert dict(zip(keys.tolist(), values.tolist(), strict=True)) == model
    assert len(index) == len(model)


def test_many_keys_grow_the_index_and_stay_findable() -> None:
    keys = np.random.default_rng(0).permutation(200_000).astype(np.int64) * 7919
    index = KeyIndex(capacity=16)
    for chunk in np.array_split(keys, 10):
        index.insert(chunk, chunk + 1)
    assert len(index) == keys.size
    np.testing.assert_array_equal(index.get(keys), keys + 1)


def test_reserved_key_and_non_integers_are_refused() -> None:
    with pytest.raises(RankerError, match="reserved"):
        check_keys(np.array([1, EMPTY]))
    with pytest.raises(RankerError, match="integers"):
        check_keys(np.array([1.5]))
