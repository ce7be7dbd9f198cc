"""In-session state in Redis, so that every API replica sees every user's events.

Behind a load balancer a user's events and their next ``/v1/rank`` may reach
different replicas. With ``api.shared_state_url`` set, each replica keeps what
:class:`api.serving.session.SessionState` keeps, with the same rules, in one
Redis:

    lucidrec:history:<user key>  list, newest first: 8-byte time + L int32 codes
    lucidrec:engaged:<user id>   list, newest first: the last room ids engaged with
    lucidrec:shown, lucidrec:clicks   hashes: room key -> impressions, clicks

A history keeps the newest ``history.length`` entries, in arrival order across
posts and in time order within one (as :class:`ranker.HistoryStore` does), so a
replica reads exactly what one process would have. User keys expire
:data:`USER_TTL_S` after the user's last engagement. A record is one pipelined
round trip; a rank request reads its user's history in one more.

Exploration counts are read for every young candidate, thousands per request,
and an HMGET of a thousand fields took 7-9 ms here. So each replica reads them
from a mirror in its memory (:class:`RoomCounts`): its own posts go to the
mirror at once, and the whole hashes are read back (HGETALL) when the mirror is
older than ``counts_max_age_s``, the API's refresh interval. Other replicas'
impressions thus reach a replica's posteriors within that interval.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import redis

from api.serving.room_counts import RoomCounts
from api.serving.rooms import RoomTable
from api.serving.session import (
    ENGAGED_ROOMS,
    MAX_ROOMS,
    engagements,
    impressions,
    interest_vector,
)
from api.serving.shared import shared_call
from configs.ranker import RankerSettings
from ranker import History, id_key, id_keys
from workers.messages import EventMessage

PREFIX = "lucidrec:"
SHOWN, CLICKS = PREFIX + "shown", PREFIX + "clicks"
USER_TTL_S = 7 * 24 * 3600


class RedisSessionState:
    """:class:`api.serving.session.Session` over a Redis shared by the API replicas."""

    def __init__(
        self, client: redis.Redis, settings: RankerSettings, counts_max_age_s: float
    ) -> None:
        self.client = client
        self.quality_watch_s = settings.tasks.quality_watch_s
        self.length, self.levels = settings.history.length, settings.lucid.levels
        self.counts_max_age_s = counts_max_age_s
        self._prune_at = MAX_ROOMS
        self._mirror = RoomCounts()
        self._mirrored_at = -np.inf
        self._lock = threading.Lock()  # the mirror

    def record(self, events: list[EventMessage], table: RoomTable) -> int:
        """Apply ``events``; returns how many were engagements with coded rooms."""
        engaged, coded = engagements(events, table, self.quality_watch_s)
        rooms, clicked = impressions(events)
        pipe = self.client.pipeline(transaction=False)
        for room, click in zip(rooms.tolist(), clicked.tolist(), strict=True):
            pipe.hincrby(SHOWN, room, 1)
            if click:
                pipe.hincrby(CLICKS, room, 1)
        for event in engaged:
            self._push(pipe, f"{PREFIX}engaged:{event.user_id}", event.room_id, ENGAGED_ROOMS)
        coded.sort(key=lambda e: e.ts)  # stable: a user's entries in time order, ties as posted
        users = id_keys([e.user_id for e in coded]).tolist()
        codes = table.room_lucid[[table.index[e.room_id] for e in coded]].astype("<i4")
        for user, event, code in zip(users, coded, codes, strict=True):
            entry = np.float64(event.ts).tobytes() + code.tobytes()
            self._push(pipe, f"{PREFIX}history:{user}", entry, self.length)
        pipe.hlen(SHOWN)
        rooms_counted = shared_call(pipe.execute)[-1]
        with self._lock:
            self._mirror.add(rooms, clicked)
        if rooms_counted > self._prune_at:
            self._forget_rooms(table)
        return len(coded)

    def refresh_counts(self) -> None:
        """Replace the mirror with the counts every replica has written."""
        pipe = self.client.pipeline(transaction=False)
        pipe.hgetall(SHOWN)
        pipe.hgetall(CLICKS)
        shown, clicks = shared_call(pipe.execute)
        keys = np.array([int(k) for k in shown], dtype=np.int64)
        mirror = RoomCounts.of(
            keys,
            np.array([float(v) for v in shown.values()]),
            np.array([float(clicks.get(k, 0)) for k in shown]),
        )
        with self._lock:
            self._mirror, self._mirrored_at = mirror, time.monotonic()

    @staticmethod
    def _push(pipe: redis.client.Pipeline, key: str, value: str | bytes, keep: int) -> None:
        pipe.lpush(key, value)
        pipe.ltrim(key, 0, keep - 1)
        pipe.expire(key, USER_TTL_S)

    def _forget_rooms(self, table: RoomTable) -> None:
        """Keep the counts of live rooms only (see ``SessionState._forget_rooms``)."""
        held = np.array(shared_call(self.client.hkeys, SHOWN), dtype=np.int64)
        stale = held[~np.isin(held, table.keys[table.live])].tolist()
        pipe = self.client.pipeline(transaction=False)
        for start in range(0, len(stale), 10_000):
            pipe.hdel(SHOWN, *stale[start : start + 10_000])
            pipe.hdel(CLICKS, *stale[start : start + 10_000])
        shared_call(pipe.execute)
        self._prune_at = max(MAX_ROOMS, 2 * (len(held) - len(stale)))

    def history_of(self, user_id: str) -> History:
        """The user's history as :meth:`ranker.HistoryStore.read` gives it, newest first."""
        key = f"{PREFIX}history:{id_key(user_id)}"
        entries = shared_call(self.client.lrange, key, 0, self.length - 1)
        codes = np.zeros((1, self.length, self.levels), dtype=np.int32)
        ts = np.zeros((1, self.length))
        for i, entry in enumerate(entries):
            ts[0, i] = np.frombuffer(entry[:8], dtype="<f8")[0]
            codes[0, i] = np.frombuffer(entry[8:], dtype="<i4")
        mask = (np.arange(self.length) < len(entries))[None]
        return History(codes=codes, ts=ts, mask=mask)

    def interest(self, user_id: str, table: RoomTable) -> np.ndarray | None:
        """The mean embedding of the rooms the user engaged with lately (unit), or None."""
        rooms = shared_call(self.client.lrange, f"{PREFIX}engaged:{user_id}", 0, -1)
        return interest_vector([r.decode() for r in rooms], table)

    def counts(self, room_keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(clicks, impressions) of rooms by their ranker keys, from the mirror."""
        if time.monotonic() - self._mirrored_at > self.counts_max_age_s:
            self.refresh_counts()
        with self._lock:
            return self._mirror.get(room_keys)
