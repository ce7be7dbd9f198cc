"""In-session adaptation: what a user's posted events change before any training sync.

An engagement (a click, a quality watch, a like or follow) appends the room's
current LUCID to the user's history (the same :class:`ranker.HistoryStore` the
trainer keeps), so the user's history tokens change on their next ``/v1/rank``;
it also feeds the user's interest vector for retrieval. Every event, engaged or
not, is counted in the engagement statistics (:mod:`api.serving.engagement`):
the candidates' statistics token and the exploration posteriors read them.

:class:`SessionState` keeps all of it in this process (one API process, the
embedded default): a history store, the last engaged room ids per user (an LRU
of :data:`MAX_USERS` users), and one :class:`~api.serving.engagement.RoomEngagement`.
:mod:`api.serving.shared_session` shares the same between API replicas through
Redis. Both follow :class:`Session`.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from api.serving.engagement import CountedEvents, RoomEngagement
from api.serving.rooms import RoomTable
from configs.ranker import RankerSettings
from ranker import History, HistoryStore, id_keys
from workers.messages import EventMessage

MAX_USERS = 200_000
ENGAGED_ROOMS = 20  # the rooms a user's interest vector is the mean of


def engagements(
    events: Sequence[EventMessage], counted: CountedEvents
) -> tuple[list[EventMessage], list[EventMessage]]:
    """The engagements among ``events`` (``counted`` is them as counted), and those of them
    with rooms that have codes (only these can join a history: an entry is a room's LUCID)."""
    engaged = counted.engaged.tolist()
    coded = counted.coded.tolist()
    return (
        [e for e, hit in zip(events, engaged, strict=True) if hit],
        [e for e, hit, ok in zip(events, engaged, coded, strict=True) if hit and ok],
    )


class Session(Protocol):
    """What serving reads and writes of in-session state: :class:`SessionState` in this
    process, :class:`api.serving.shared_session.RedisSessionState` shared by replicas."""

    def record(self, events: list[EventMessage], table: RoomTable) -> int: ...

    def history_of(self, user_id: str) -> History: ...

    def interest(self, user_id: str, table: RoomTable) -> np.ndarray | None: ...

    def stats(self, room_keys: np.ndarray, room_lucid: np.ndarray, now: float) -> np.ndarray: ...

    def counts(self, room_keys: np.ndarray, now: float) -> tuple[np.ndarray, np.ndarray]: ...


def interest_vector(rooms: list[str], table: RoomTable) -> np.ndarray | None:
    """The mean embedding of ``rooms`` (unit), or None when none of them is known."""
    rows = [table.index[r] for r in rooms if r in table.index]
    if not rows:
        return None
    vector = table.embedding[rows].mean(axis=0)
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else None


class SessionState:
    """Per-user history and interests, per-room engagement counts, in this process;
    thread-safe."""

    def __init__(self, settings: RankerSettings) -> None:
        self.quality_watch_s = settings.tasks.quality_watch_s
        self.history = HistoryStore(settings.history.length, settings.lucid.levels)
        self.engagement = RoomEngagement(settings)
        self._engaged: OrderedDict[str, deque[str]] = OrderedDict()
        self._lock = threading.Lock()  # the history and the engaged rooms

    def record(self, events: list[EventMessage], table: RoomTable) -> int:
        """Apply ``events``; returns how many were engagements with coded rooms."""
        counted = CountedEvents.of(events, table, self.quality_watch_s)
        engaged, coded = engagements(events, counted)
        self.engagement.add(counted)
        with self._lock:
            for event in engaged:
                rooms = self._engaged.pop(event.user_id, None) or deque(maxlen=ENGAGED_ROOMS)
                rooms.append(event.room_id)
                self._engaged[event.user_id] = rooms
                if len(self._engaged) > MAX_USERS:
                    self._engaged.popitem(last=False)
            if coded:
                rows = [table.index[e.room_id] for e in coded]
                self.history.append(
                    id_keys([e.user_id for e in coded]),
                    table.room_lucid[rows],
                    np.array([e.ts for e in coded], dtype=np.float64),
                )
        return len(coded)

    def history_of(self, user_id: str) -> History:
        with self._lock:
            return self.history.read(id_keys([user_id]))

    def interest(self, user_id: str, table: RoomTable) -> np.ndarray | None:
        """The mean embedding of the rooms the user engaged with lately (unit), or None."""
        with self._lock:
            rooms = list(self._engaged.get(user_id, ()))
        return interest_vector(rooms, table)

    def stats(self, room_keys: np.ndarray, room_lucid: np.ndarray, now: float) -> np.ndarray:
        """(K, S) engagement statistics of candidates (ranker room keys, room LUCIDs) at
        ``now``: what :class:`ranker.Candidates` carries to the ranker."""
        return self.engagement.features(room_keys, room_lucid, now)

    def counts(self, room_keys: np.ndarray, now: float) -> tuple[np.ndarray, np.ndarray]:
        """(clicks, impressions) of rooms by their ranker keys (:func:`ranker.id_keys`),
        decayed to ``now`` at the longest half-life."""
        return self.engagement.counts(room_keys, now)
