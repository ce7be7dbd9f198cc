"""Sampled impressions and probes: seeded, K per event, only available rooms never touched."""

from __future__ import annotations

import time

import numpy as np

from api.evaluation.adapters import Dataset
from api.evaluation.rooms import Rooms
from api.evaluation.sampling import Touched, sample_impressions, sample_probes
from tests.unit.evaluation.helpers import dataset, random_dataset


def _setup(data: Dataset, window: float | None) -> tuple[Rooms, np.ndarray, Touched]:
    rooms = Rooms.build(data, window)
    _, users = np.unique(data.user, return_inverse=True)
    return rooms, users, Touched(users, data.item, len(data.slices))


def test_touched_pairs() -> None:
    touched = Touched(np.array([0, 0, 2]), np.array([1, 3, 0]), n_items=4)
    got = touched(np.array([0, 0, 1, 2, 2]), np.array([1, 2, 1, 0, 3]))
    assert got.tolist() == [True, False, False, True, False]


def test_impressions_are_seeded_k_distinct_available_and_untouched() -> None:
    data = random_dataset(3000, n_users=40, n_items=300, span_s=30 * 86400.0, seed=0)
    for window in (None, 86400.0):
        rooms, users, touched = _setup(data, window)
        sampled = sample_impressions(users, data.ts, rooms, touched, 4, seed=3)
        again = sample_impressions(users, data.ts, rooms, touched, 4, seed=3)
        assert np.array_equal(sampled, again)
        assert not np.array_equal(sampled, sample_impressions(users, data.ts, rooms, touched, 4, 4))
        ok = sampled >= 0
        event = np.repeat(np.arange(len(data)), 4).reshape(-1, 4)[ok]
        assert not touched(users[event], rooms.item[sampled[ok]]).any()
        assert rooms.available(sampled[ok], data.ts[event]).all()
        # distinct within an event, and the padding only at the end of a row
        for row in sampled:
            real = row[row >= 0]
            assert len(set(real.tolist())) == len(real) and (row[len(real) :] == -1).all()
        # fewer than K only where the exact pool is smaller
        for e in np.flatnonzero((~ok).any(axis=1)):
            pool = np.arange(len(rooms))
            pool = pool[rooms.available(pool, np.full(len(pool), data.ts[e]))]
            pool = pool[~touched(np.full(len(pool), users[e]), rooms.item[pool])]
            assert ok[e].sum() == min(4, len(pool))
        assert ok.mean() > 0.9


def test_a_small_pool_gives_fewer_and_k_zero_gives_none() -> None:
    # at t=5 only items 0 and 1 have started; u0 touched item 0 -> one candidate
    data = dataset(["u0", "u1", "u0", "u1"], [0, 1, 2, 0], [0.0, 1.0, 5.0, 6.0])
    rooms, users, touched = _setup(data, None)
    sampled = sample_impressions(users, data.ts, rooms, touched, 3, seed=0)
    assert sampled.tolist() == [[-1, -1, -1], [-1, -1, -1], [1, -1, -1], [2, -1, -1]]
    assert sample_impressions(users, data.ts, rooms, touched, 0, seed=0).shape == (4, 0)


def test_sampling_100k_events_takes_seconds() -> None:
    data = random_dataset(100_000, n_users=900, n_items=1700, span_s=200 * 86400.0, seed=1)
    rooms, users, touched = _setup(data, 86400.0)
    start = time.perf_counter()
    sampled = sample_impressions(users, data.ts, rooms, touched, 4, seed=0)
    assert time.perf_counter() - start < 10
    assert (sampled >= 0).mean() > 0.9


def test_probes_rank_the_positive_against_available_untouched_rooms() -> None:
    data = random_dataset(2000, n_users=30, n_items=200, span_s=10 * 86400.0, seed=2)
    rooms, users, touched = _setup(data, 86400.0)
    candidates = np.flatnonzero(data.label > 0)[-300:]
    probes = sample_probes(
        candidates,
        users,
        data.ts,
        rooms.event_room,
        rooms,
        touched,
        negatives=5,
        max_probes=50,
        seed=0,
    )
    assert len(probes.event) == 50 and probes.rooms.shape == (50, 6)
    assert set(probes.event.tolist()) <= set(candidates.tolist())
    assert np.array_equal(probes.rooms[:, 0], rooms.event_room[probes.event])
    negatives = probes.rooms[:, 1:]
    event = np.repeat(probes.event, 5)
    assert not touched(users[event], rooms.item[negatives.reshape(-1)]).any()
    assert rooms.available(negatives.reshape(-1), data.ts[event]).all()
    again = sample_probes(
        candidates,
        users,
        data.ts,
        rooms.event_room,
        rooms,
        touched,
        negatives=5,
        max_probes=50,
        seed=0,
    )
    assert np.array_equal(probes.rooms, again.rooms)
    # with too many negatives asked, the short candidates are counted and left out
    greedy = sample_probes(
        candidates,
        users,
        data.ts,
        rooms.event_room,
        rooms,
        touched,
        negatives=10_000,
        max_probes=50,
        seed=0,
    )
    assert len(greedy.event) == 0 and greedy.short == len(candidates)
