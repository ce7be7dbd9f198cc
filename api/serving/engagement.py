"""The API's engagement statistics: the ranker's own counter, fed the events posted to it.

The ranker reads each candidate's decayed engagement counts as a token
(:mod:`ranker.engagement`), and the trainer counts the events it trains on. Serving
computes them from the events posted to ``/v1/events`` with the same
:class:`ranker.EngagementCounter`, so for the same events a room's statistics at
serving time are those the model was trained with: decay is exact and order-free,
so it does not matter that the API counts posts as they arrive and the trainer
mini-batches in time order. The exploration posteriors read a room's clicks and
impressions from the same counts (at the longest half-life); there is no second
counter.

Every posted event counts for its room and for all rooms; one on a room that has
codes also counts for the room's LUCID prefixes. The train task counts the events
it cannot train on (rooms without codes) the same way, so both sides agree on the
room and all-rooms rows too.

Bounded as the trainer's counter is, in event time: every ``sparse.expire_every_s``
past the newest event counted, rooms and prefixes with no event in the last
``sparse.ttl_s`` (the room-row TTL) are dropped.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from api.serving.rooms import RoomTable
from configs.ranker import RankerSettings
from ranker import EngagementCounter, id_keys, positive_channels
from workers.events import event_labels
from workers.messages import EventMessage


@dataclass(frozen=True)
class CountedEvents:
    """n posted events as the counter takes them."""

    ts: np.ndarray  # (n,) float64 event times
    room: np.ndarray  # (n,) int64 room keys
    room_lucid: np.ndarray  # (n, L) int64, zeros where ``coded`` is False
    coded: np.ndarray  # (n,) bool: the room had codes when the event was posted
    positives: np.ndarray  # (n, 4) bool: click, quality watch, like, follow

    def __len__(self) -> int:
        return len(self.ts)

    @classmethod
    def of(
        cls, events: Sequence[EventMessage], table: RoomTable, quality_watch_s: float
    ) -> CountedEvents:
        """``events`` with their rooms' current codes from ``table``."""
        n = len(events)
        rows = np.array([table.index.get(e.room_id, -1) for e in events], dtype=np.int64)
        coded = rows >= 0
        coded[coded] = table.coded[rows[coded]]
        room_lucid = np.zeros((n, table.room_lucid.shape[1]), dtype=np.int64)
        room_lucid[coded] = table.room_lucid[rows[coded]]
        return cls(
            ts=np.array([e.ts for e in events], dtype=np.float64),
            room=id_keys([e.room_id for e in events]),
            room_lucid=room_lucid,
            coded=coded,
            positives=positive_channels(event_labels(events), n, quality_watch_s),
        )

    @property
    def engaged(self) -> np.ndarray:
        """(n,) bool: the events that are engagements (any positive channel)."""
        return self.positives.any(axis=1)


class RoomEngagement:
    """An :class:`ranker.EngagementCounter` with the trainer's expiry; thread-safe."""

    def __init__(self, settings: RankerSettings) -> None:
        self.counter = EngagementCounter(
            settings.engagement, settings.lucid.levels, settings.lucid.codes
        )
        self.ttl_s = settings.sparse.ttl_s
        self.expire_every_s = settings.sparse.expire_every_s
        self._last_expiry = -np.inf
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """Rooms counted."""
        with self._lock:
            return len(self.counter)

    def add(self, events: CountedEvents) -> None:
        """Count ``events``, then expire what the TTL says is due (as the trainer does)."""
        if not len(events):
            return
        with self._lock:
            self.counter.add(
                events.ts, events.room, events.room_lucid, events.positives, events.coded
            )
            now = float(events.ts.max())
            if now - self._last_expiry >= self.expire_every_s:
                if np.isfinite(self._last_expiry):
                    self.counter.forget_before(now - self.ttl_s)
                self._last_expiry = now

    def features(self, room: np.ndarray, room_lucid: np.ndarray, now: float) -> np.ndarray:
        """(K, S) float32 statistics of candidates (room keys, room LUCIDs) at ``now``."""
        with self._lock:
            return self.counter.features(room, room_lucid, now)

    def counts(self, room: np.ndarray, now: float) -> tuple[np.ndarray, np.ndarray]:
        """(clicks, impressions) of rooms at ``now``, decayed at the longest half-life."""
        with self._lock:
            return self.counter.room_counts(room, now)
