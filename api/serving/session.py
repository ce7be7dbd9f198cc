"""In-session adaptation: what a user's posted events change before any training sync.

An engagement (a click, a quality watch, a like or follow) appends the room's
current LUCID to the user's history (the same :class:`ranker.HistoryStore` the
trainer keeps), so the user's history tokens change on their next ``/v1/rank``;
it also feeds the user's interest vector for retrieval. Impressions and clicks
per room feed the exploration posteriors.

:class:`SessionState` keeps all of it in this process (one API process, the
embedded default); :mod:`api.serving.shared_session` keeps the same in Redis for
API replicas. Both follow :class:`Session`.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from typing import Protocol

import numpy as np

from api.serving.room_counts import RoomCounts
from api.serving.rooms import RoomTable
from configs.ranker import RankerSettings
from ranker import History, HistoryStore, id_keys
from workers.messages import EventMessage

MAX_USERS = 200_000
MAX_ROOMS = 200_000  # exploration counts kept before those of non-live rooms are dropped
ENGAGED_ROOMS = 20  # the rooms a user's interest vector is the mean of


def is_engagement(event: EventMessage, quality_watch_s: float) -> bool:
    """A positive for the ranker: a click, a watch of quality_watch_s or more, a like, a follow."""
    labels = event.labels
    return (
        labels.get("click", 0) > 0
        or labels.get("watch_s", 0) >= quality_watch_s
        or labels.get("like", 0) > 0
        or labels.get("follow", 0) > 0
    )


def engagements(
    events: list[EventMessage], table: RoomTable, quality_watch_s: float
) -> tuple[list[EventMessage], list[EventMessage]]:
    """The engagements among ``events``, and those of them with rooms that have codes
    (only these can join a history: a history entry is a room's LUCID)."""
    engaged = [e for e in events if is_engagement(e, quality_watch_s)]
    coded = [e for e in engaged if e.room_id in table.index and table.coded[table.index[e.room_id]]]
    return engaged, coded


def impressions(events: list[EventMessage]) -> tuple[np.ndarray, np.ndarray]:
    """Every event's room key and whether it was clicked: what the exploration counts add."""
    clicked = np.array([e.labels.get("click", 0) > 0 for e in events], dtype=bool)
    return id_keys([e.room_id for e in events]), clicked


class Session(Protocol):
    """What serving reads and writes of in-session state: :class:`SessionState` in this
    process, :class:`api.serving.shared_session.RedisSessionState` shared by replicas."""

    def record(self, events: list[EventMessage], table: RoomTable) -> int: ...

    def history_of(self, user_id: str) -> History: ...

    def interest(self, user_id: str, table: RoomTable) -> np.ndarray | None: ...

    def counts(self, room_keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


def interest_vector(rooms: list[str], table: RoomTable) -> np.ndarray | None:
    """The mean embedding of ``rooms`` (unit), or None when none of them is known."""
    rows = [table.index[r] for r in rooms if r in table.index]
    if not rows:
        return None
    vector = table.embedding[rows].mean(axis=0)
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else None


class SessionState:
    """Per-user history and interests, per-room exploration counts, in this process;
    thread-safe."""

    def __init__(self, settings: RankerSettings) -> None:
        self.quality_watch_s = settings.tasks.quality_watch_s
        self.history = HistoryStore(settings.history.length, settings.lucid.levels)
        self._engaged: OrderedDict[str, deque[str]] = OrderedDict()
        self.room_counts = RoomCounts()
        self._prune_at = MAX_ROOMS
        self._lock = threading.Lock()

    def record(self, events: list[EventMessage], table: RoomTable) -> int:
        """Apply ``events``; returns how many were engagements with coded rooms."""
        engaged, coded = engagements(events, table, self.quality_watch_s)
        with self._lock:
            self.room_counts.add(*impressions(events))
            if len(self.room_counts) > self._prune_at:
                self._forget_rooms(table)
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

    def _forget_rooms(self, table: RoomTable) -> None:
        """Keep the exploration counts of live rooms only: an ended room is never explored
        again, and room ids never repeat, so without this the counters grow forever."""
        self.room_counts.keep(table.keys[table.live])
        # more live rooms than the cap: prune again only once the counters have doubled
        self._prune_at = max(MAX_ROOMS, 2 * len(self.room_counts))

    def history_of(self, user_id: str) -> History:
        with self._lock:
            return self.history.read(id_keys([user_id]))

    def interest(self, user_id: str, table: RoomTable) -> np.ndarray | None:
        """The mean embedding of the rooms the user engaged with lately (unit), or None."""
        with self._lock:
            rooms = list(self._engaged.get(user_id, ()))
        return interest_vector(rooms, table)

    def counts(self, room_keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(clicks, impressions) of rooms by their ranker keys (:func:`ranker.id_keys`)."""
        with self._lock:
            return self.room_counts.get(room_keys)
