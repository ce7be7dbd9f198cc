"""Collisionless table properties: own rows, filter, expiry, sparse optimizer, deltas, snapshots."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from configs.ranker import SparseSettings
from ranker import CollisionlessTable, RankerError

keys_st = st.lists(st.integers(min_value=0, max_value=2**62), min_size=1, max_size=200)


def table(**spec: object) -> CollisionlessTable:
    defaults = {"dim": 4, "min_count": 1, "initial_capacity": 8, "ttl_s": 100.0}
    return CollisionlessTable("t", SparseSettings(**(defaults | spec)), seed=3)


@settings(max_examples=50, deadline=None)
@given(batches=st.lists(keys_st, min_size=1, max_size=6))
def test_no_two_keys_share_a_row_and_lookups_return_the_inserted_row(
    batches: list[list[int]],
) -> None:
    t = table()
    rows_of: dict[int, int] = {}
    for version, batch in enumerate(batches, start=1):
        keys = np.array(batch, dtype=np.int64)
        rows, index = t.train_rows(keys, now=float(version), version=version)
        for key, row in zip(batch, rows[index].tolist(), strict=True):
            assert rows_of.setdefault(key, row) == row  # a key keeps its row
    assert 0 not in rows_of.values()
    assert len(set(rows_of.values())) == len(rows_of)  # no two keys share a row
    probe = np.array(list(rows_of), dtype=np.int64)
    assert t.rows(probe).tolist() == list(rows_of.values())
    assert len(t) == len(rows_of)


@settings(max_examples=50, deadline=None)
@given(
    batches=st.lists(st.lists(st.integers(0, 20), min_size=1, max_size=30), min_size=1, max_size=8),
    min_count=st.integers(1, 5),
)
def test_a_key_gets_its_row_exactly_at_its_min_count_th_occurrence(
    batches: list[list[int]], min_count: int
) -> None:
    t = table(min_count=min_count)
    seen: dict[int, int] = {}
    for version, batch in enumerate(batches, start=1):
        keys = np.array(batch, dtype=np.int64)
        rows, index = t.train_rows(keys, now=float(version), version=version)
        for key in batch:
            seen[key] = seen.get(key, 0) + 1
        for key, row in zip(batch, rows[index].tolist(), strict=True):
            assert (row != 0) == (seen[key] >= min_count)
    stats = t.stats()
    assert stats["rows"] == sum(c >= min_count for c in seen.values())
    assert stats["pending"] == sum(c < min_count for c in seen.values())


@settings(max_examples=50, deadline=None)
@given(touches=st.dictionaries(st.integers(0, 10**6), st.floats(0.0, 500.0), min_size=1))
def test_eviction_frees_exactly_the_expired_keys_and_reuses_their_slots(
    touches: dict[int, float],
) -> None:
    t = table(ttl_s=100.0)
    for key, when in sorted(touches.items(), key=lambda kv: kv[1]):
        t.train_rows(np.array([key]), now=when, version=1)
    now = 400.0
    expired = {k for k, when in touches.items() if when < now - 100.0}
    rows_before = t.rows(np.array(list(touches)))
    assert t.evict(now, version=2) == len(expired)
    rows_after = t.rows(np.array(list(touches)))
    for key, before, after in zip(touches, rows_before, rows_after, strict=True):
        assert after == (0 if key in expired else before)
    freed = {int(r) for k, r in zip(touches, rows_before, strict=True) if k in expired}
    fresh = np.arange(10**7, 10**7 + len(freed))
    reused, _ = t.train_rows(fresh, now=now, version=3)
    assert freed <= set(reused.tolist())  # freed slots are handed out again first
    assert t.stats()["evictions"] == len(expired)


def test_filtered_keys_train_the_default_row() -> None:
    t = table(min_count=3)
    rows, _ = t.train_rows(np.array([5, 6]), now=0.0, version=1)
    assert rows.tolist() == [0]
    before = t.weight[0].clone()
    t.apply_gradients(rows, torch.ones(1, 4), version=1)
    assert not torch.equal(t.weight[0], before)
    assert t.stats()["filtered_lookups"] == 2


def test_row_adagrad_matches_torch_adagrad_on_the_touched_rows() -> None:
    t = table(lr=0.1, initial_accumulator=0.0, eps=1e-10)
    rows, _ = t.train_rows(np.array([10, 20, 30]), now=0.0, version=1)
    reference = torch.nn.Parameter(t.weight[rows].clone())
    optimizer = torch.optim.Adagrad([reference], lr=0.1, eps=1e-10)
    generator = torch.Generator().manual_seed(0)
    for version in range(2, 5):
        grad = torch.randn(3, 4, generator=generator)
        t.apply_gradients(rows, grad, version)
        reference.grad = grad.clone()
        optimizer.step()
    torch.testing.assert_close(t.weight[rows], reference.detach())


@pytest.mark.parametrize("optimizer", ["adagrad", "rowwise_adagrad", "sgd"])
def test_every_row_optimizer_moves_only_the_touched_rows(optimizer: str) -> None:
    t = table(optimizer=optimizer)
    t.train_rows(np.arange(6), now=0.0, version=1)
    before = t.weight.clone()
    rows = t.rows(np.array([1, 4]))
    t.apply_gradients(rows, torch.ones(2, 4), version=2)
    changed = (t.weight != before).any(dim=1).nonzero().flatten().tolist()
    assert changed == sorted(rows.tolist())


def test_a_delta_brings_a_copy_to_the_same_rows_including_evictions() -> None:
    trainer_side, copy = table(), table()
    trainer_side.train_rows(np.arange(10), now=0.0, version=1)
    copy.apply_delta(trainer_side.delta(since=0, version=1))
    trainer_side.train_rows(np.arange(5, 15), now=150.0, version=2)
    trainer_side.apply_gradients(trainer_side.rows(np.array([7, 12])), torch.ones(2, 4), 2)
    trainer_side.evict(now=150.0, version=2)  # keys 0..4 were last touched at 0
    delta = trainer_side.delta(since=1, version=2)
    assert sorted(delta.evicted.tolist()) == [0, 1, 2, 3, 4]
    copy.apply_delta(delta)
    probe = np.arange(20)
    torch.testing.assert_close(copy.lookup(probe), trainer_side.lookup(probe), rtol=0, atol=0)
    assert len(copy) == len(trainer_side) == 10
    with pytest.raises(RankerError, match="take a snapshot"):
        trainer_side.delta(since=0, version=2)


def test_snapshot_restores_the_exact_table() -> None:
    t = table(min_count=2)
    for version in range(1, 4):  # keys 5v..5v+9 at time 50v
        t.train_rows(np.arange(5 * version, 5 * version + 10), now=50.0 * version, version=version)
    assert t.evict(now=210.0, version=4) == 5  # rows 10..14; pending 5..9 go too
    t.apply_gradients(t.rows(np.array([16])), torch.ones(1, 4), version=5)
    restored = CollisionlessTable.from_state_tensors("t", t.spec, t.state_tensors(), trainable=True)
    without_bytes = ({k: v for k, v in x.stats().items() if k != "bytes"} for x in (restored, t))
    assert (
        next(without_bytes)
        == next(without_bytes)
        == {
            "rows": 5,
            "capacity": 16,
            "pending": 5,
            "evictions": 5,
            "filtered_lookups": 20,
        }
    )
    for copy in (restored, t):  # both go on identically
        copy.train_rows(np.arange(30), now=211.0, version=6)
    probe = np.arange(35)
    np.testing.assert_array_equal(restored.rows(probe), t.rows(probe))
    torch.testing.assert_close(restored.weight, t.weight, rtol=0, atol=0)
    torch.testing.assert_close(restored.state, t.state, rtol=0, atol=0)


def test_a_served_copy_cannot_be_trained() -> None:
    copy = CollisionlessTable.from_state_tensors(
        "t", table().spec, table().state_tensors(), trainable=False
    )
    with pytest.raises(RankerError, match="served copy"):
        copy.apply_gradients(np.array([0]), torch.ones(1, 4), 1)
