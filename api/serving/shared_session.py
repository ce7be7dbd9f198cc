"""In-session state in Redis, so that every API replica sees every user's events.

Behind a load balancer a user's events and their next ``/v1/rank`` may reach
different replicas. With ``api.shared_state_url`` set, each replica keeps what
:class:`api.serving.session.SessionState` keeps, with the same rules, through one
Redis:

    lucidrec:history:<user key>  list, newest first: 8-byte time + L int32 codes
    lucidrec:engaged:<user id>   list, newest first: the last room ids engaged with
    lucidrec:engagement          stream: one packed entry per posted event, which
                                 every replica counts in its own memory
                                 (:mod:`api.serving.engagement_stream`)

A history keeps the newest ``history.length`` entries, in arrival order across
posts and in time order within one (as :class:`ranker.HistoryStore` does), so a
replica reads exactly what one process would have. User keys expire
:data:`USER_TTL_S` after the user's last engagement. A record is one pipelined
round trip (its pushes, its XADDs and the read of the stream up to its end); a
rank request reads its user's history in one more. The engagement statistics and
exploration counts are read from the replica's counter, which the stream keeps
within ``counts_max_age_s`` (the API's refresh interval) of every replica's posts,
with no round trip on the request path unless the background refresher fell
behind.
"""

from __future__ import annotations

import numpy as np
import redis

from api.serving.engagement import CountedEvents, RoomEngagement
from api.serving.engagement_stream import EngagementStream
from api.serving.rooms import RoomTable
from api.serving.session import ENGAGED_ROOMS, engagements, interest_vector
from api.serving.shared import shared_call
from configs.ranker import RankerSettings
from ranker import History, id_key, id_keys
from workers.messages import EventMessage

PREFIX = "lucidrec:"
USER_TTL_S = 7 * 24 * 3600


class RedisSessionState:
    """:class:`api.serving.session.Session` over a Redis shared by the API replicas."""

    def __init__(
        self, client: redis.Redis, settings: RankerSettings, counts_max_age_s: float
    ) -> None:
        self.client = client
        self.quality_watch_s = settings.tasks.quality_watch_s
        self.length, self.levels = settings.history.length, settings.lucid.levels
        self.engagement = RoomEngagement(settings)
        self.stream = EngagementStream(client, self.engagement, self.levels, counts_max_age_s)

    def record(self, events: list[EventMessage], table: RoomTable) -> int:
        """Apply ``events``; returns how many were engagements with coded rooms."""
        counted = CountedEvents.of(events, table, self.quality_watch_s)
        engaged, coded = engagements(events, counted)
        pipe = self.client.pipeline(transaction=False)
        for event in engaged:
            self._push(pipe, f"{PREFIX}engaged:{event.user_id}", event.room_id, ENGAGED_ROOMS)
        coded.sort(key=lambda e: e.ts)  # stable: a user's entries in time order, ties as posted
        users = id_keys([e.user_id for e in coded]).tolist()
        codes = table.room_lucid[[table.index[e.room_id] for e in coded]].astype("<i4")
        for user, event, code in zip(users, coded, codes, strict=True):
            entry = np.float64(event.ts).tobytes() + code.tobytes()
            self._push(pipe, f"{PREFIX}history:{user}", entry, self.length)
        read_at = self.stream.append(pipe, counted)
        self.stream.applied(shared_call(pipe.execute)[-1], read_at)
        return len(coded)

    def catch_up(self) -> None:
        """Count every replica's events posted since the last read (the refresher calls it)."""
        self.stream.catch_up()

    @staticmethod
    def _push(pipe: redis.client.Pipeline, key: str, value: str | bytes, keep: int) -> None:
        pipe.lpush(key, value)
        pipe.ltrim(key, 0, keep - 1)
        pipe.expire(key, USER_TTL_S)

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

    def stats(self, room_keys: np.ndarray, room_lucid: np.ndarray, now: float) -> np.ndarray:
        """(K, S) engagement statistics of candidates at ``now``, every replica's events
        counted (see :meth:`api.serving.session.SessionState.stats`)."""
        self.stream.fresh()
        return self.engagement.features(room_keys, room_lucid, now)

    def counts(self, room_keys: np.ndarray, now: float) -> tuple[np.ndarray, np.ndarray]:
        """(clicks, impressions) of rooms by their ranker keys, every replica's events
        counted, decayed to ``now`` at the longest half-life."""
        self.stream.fresh()
        return self.engagement.counts(room_keys, now)
