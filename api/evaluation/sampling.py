"""Sampled impressions and ranking probes: rooms a user could have picked and did not.

A log holds only what users picked. The ranking probes ask which of a user's
available rooms gets picked and liked, which a model trained on picked items
alone never sees; so each logged event gets K impressions with label 0 for the
same user, time and context, drawn from the rooms available then that the user
never touched. Both draws use the same two rules:

- available at t: the room had started (first event at or before t) and, under a
  room window, had not ended (last event at or after t);
- never touched: the user has no event, at any time in the log, on the room's
  *item*. Under a window an item has several rooms with the same content and
  codes; a user who rated the movie in one of them did pick it, so another of its
  rooms is no honest negative (and would teach a content model that the same
  content is both liked and ignored).

Impressions are drawn by vectorised rejection sampling: uniform draws from the
rooms that started in the last ``max_life_s`` (a superset of the available ones),
rejecting unavailable, touched and repeated rooms, a few rounds for the events
still short. Where few of those rooms are still live (a window's quiet hours)
rejection rarely hits, so the events still short after the rounds draw the rest
from their exact pool, one by one. Either way it is uniform sampling without
replacement from the available, untouched rooms, and an event keeps fewer than
K only when its pool is smaller (early in the log, a heavy user, a quiet hour).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from api.evaluation.rooms import Rooms

# rejection rounds, and draws per impression per round: with a quarter of the candidates
# acceptable, 4 rounds of 4K draws leave few events for the exact completion
ROUNDS = 4
DRAWS_PER_IMPRESSION = 4


class Touched:
    """The (user, item) pairs of a whole log, for membership tests on arrays."""

    def __init__(self, user: np.ndarray, item: np.ndarray, n_items: int) -> None:
        self.n_items = n_items
        self.pairs = np.unique(user.astype(np.int64) * n_items + item)

    def __call__(self, user: np.ndarray, item: np.ndarray) -> np.ndarray:
        """Whether each user (index) ever touched the matching item."""
        code = np.asarray(user, dtype=np.int64) * self.n_items + item
        at = np.minimum(np.searchsorted(self.pairs, code), len(self.pairs) - 1)
        return self.pairs[at] == code


def sample_impressions(
    user: np.ndarray,
    ts: np.ndarray,
    rooms: Rooms,
    touched: Touched,
    k: int,
    seed: int,
) -> np.ndarray:
    """(n, k) rooms shown to each event's ``user`` (index) at ``ts`` and not picked; -1 pads
    the events whose pool ran short (their rooms come first)."""
    n = len(ts)
    chosen = np.full((n, k), -1, dtype=np.int64)
    if k == 0 or n == 0:
        return chosen
    rng = np.random.default_rng(seed)
    order, first_sorted = rooms.by_start()
    lo, hi = rooms.candidate_bounds(first_sorted, ts)
    pending = np.flatnonzero(hi > lo)
    width = k * DRAWS_PER_IMPRESSION
    for _ in range(ROUNDS):
        if not pending.size:
            break
        span = (hi - lo)[pending]
        offset = (rng.random((pending.size, width)) * span[:, None]).astype(np.int64)
        draws = order[lo[pending, None] + offset]
        ok = rooms.available(draws, ts[pending, None])
        ok &= ~touched(np.repeat(user[pending], width), rooms.item[draws].reshape(-1)).reshape(
            draws.shape
        )
        rows = np.concatenate([chosen[pending], np.where(ok, draws, -1)], axis=1)
        keep = _first_distinct(rows)
        compact = np.argsort(~keep, axis=1, kind="stable")[:, :k]
        filled = np.minimum(keep.sum(axis=1), k)
        picked = np.take_along_axis(rows, compact, axis=1)
        picked[np.arange(k)[None, :] >= filled[:, None]] = -1
        chosen[pending] = picked
        pending = pending[filled < k]
    for e in pending.tolist():  # the rest from the exact pool
        pool = order[lo[e] : hi[e]]
        pool = pool[rooms.available(pool, ts[e]) & ~np.isin(pool, chosen[e])]
        pool = np.sort(pool[~touched(np.full(pool.size, user[e]), rooms.item[pool])])
        have = int((chosen[e] >= 0).sum())
        more = rng.choice(pool, min(k - have, pool.size), replace=False)
        chosen[e, have : have + more.size] = more
    return chosen


def _first_distinct(rows: np.ndarray) -> np.ndarray:
    """Mask of each row's entries that are not -1 and not a repeat of an earlier entry."""
    by_value = np.argsort(rows, axis=1, kind="stable")  # equal values keep their order
    values = np.take_along_axis(rows, by_value, axis=1)
    first = np.ones(rows.shape, dtype=bool)
    first[:, 1:] = values[:, 1:] != values[:, :-1]
    keep = np.empty(rows.shape, dtype=bool)
    np.put_along_axis(keep, by_value, first & (values >= 0), axis=1)
    return keep


@dataclass(frozen=True)
class Probes:
    """Ranking probes: the logged event and its candidate rooms (the picked one first)."""

    event: np.ndarray  # (p,) sorted logged-event indices
    rooms: np.ndarray  # (p, 1 + negatives) room indices
    short: int  # eligible positives dropped: fewer available, untouched rooms than negatives


def sample_probes(
    candidates: np.ndarray,
    user: np.ndarray,
    ts: np.ndarray,
    event_room: np.ndarray,
    rooms: Rooms,
    touched: Touched,
    *,
    negatives: int,
    max_probes: int,
    seed: int,
) -> Probes:
    """At most ``max_probes`` of the ``candidates`` (logged positive events), each with
    ``negatives`` rooms drawn without replacement from its available, untouched rooms.

    Candidates whose pool is smaller than ``negatives`` are left out first, so the
    probes are a uniform draw of those that can be ranked against the full count.
    """
    rng = np.random.default_rng(seed)
    order, first_sorted = rooms.by_start()
    lo, hi = rooms.candidate_bounds(first_sorted, ts[candidates])
    pools = []
    for e, a, b in zip(candidates.tolist(), lo.tolist(), hi.tolist(), strict=True):
        pool = np.sort(order[a:b])  # by room index: the draw does not depend on start order
        pool = pool[rooms.available(pool, ts[e])]
        pools.append(pool[~touched(np.full(pool.size, user[e]), rooms.item[pool])])
    eligible = np.flatnonzero([len(pool) >= negatives for pool in pools])
    if len(eligible) > max_probes:
        eligible = np.sort(rng.choice(eligible, max_probes, replace=False))
    rows = [
        [event_room[candidates[i]], *rng.choice(pools[i], negatives, replace=False)]
        for i in eligible.tolist()
    ]
    return Probes(
        event=candidates[eligible].astype(np.int64),
        rooms=np.asarray(rows, dtype=np.int64).reshape(-1, negatives + 1),
        short=int(sum(len(pool) < negatives for pool in pools)),
    )
