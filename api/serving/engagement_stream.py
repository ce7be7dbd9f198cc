"""The replicas' engagement events in one Redis Stream, which every replica counts in order.

Each replica keeps its own :class:`~api.serving.engagement.RoomEngagement` in memory,
because a request reads the statistics of thousands of candidates (an HMGET of a
thousand fields took 7-9 ms here, numpy on local arrays a fraction of that). For
them to agree, every replica counts every replica's events: a post appends one
entry holding its events to the stream :data:`STREAM`, and each replica applies
the stream, in stream order, from where it stands to its end:

* right after its own XADD, in the same pipelined round trip (an XRANGE after
  its position), so a replica's own posts count before its next request;
* before serving, when its last read is older than ``max_age_s`` (the API's
  refresh interval; the background refresher usually does it first), so other
  replicas' events reach its statistics within that interval. One thread reads
  at a time; a request that finds a read under way serves what is counted.

An entry has two fields: ``levels`` (L, which every replica must share, as it
must for the histories) and ``events``, the post's events as packed little-endian
records (:func:`record_dtype`, 33 bytes at L=4): the event time (float64), the
room key (int64), the room LUCID (L int32, zeros without codes) and one byte of
bits: 1 if the room had codes, then 2, 4, 8, 16 for a click, quality watch, like,
follow. An entry per post, not per event: a post of a thousand events is one XADD
and, for every replica, one entry to parse (per event, redis-py's packing and
parsing took 20-25 us an event, five times the counting itself).

Bounds: each XADD trims the stream to about :data:`STREAM_MAXLEN` entries (MAXLEN
~, whole nodes at a time, so cheaply). Redis takes ~41 bytes an event at L=4 and
a post holds at most 1000 events (``/v1/events``): at most about 10M events
(~400 MB); at a hundred events a post, 1M (~40 MB), which a replica counts in
about 7 s here. A replica started later reads the retained stream from its
start, so it misses what was trimmed: where those events still weigh (within a
half-life or two of the longest), its counts fall short of its peers' by their
weight; a replica that falls more than the cap behind skips what was trimmed the
same way. In memory, each replica's counter expires rooms by the room-row TTL
like the trainer's.
"""

from __future__ import annotations

import bisect
import threading
import time

import numpy as np
import redis

from api.serving.engagement import CountedEvents, RoomEngagement
from api.serving.shared import SharedStateError, shared_call

STREAM = "lucidrec:engagement"
# posts the stream keeps (approximately); see the module docstring
STREAM_MAXLEN = 10_000
# entries one XRANGE returns: a catch-up reads the stream in chunks of this many posts
READ_COUNT = 100
_BITS = np.array([2, 4, 8, 16], dtype=np.uint8)  # click, quality watch, like, follow


def record_dtype(levels: int) -> np.dtype:
    """One event of the stream, packed: time, room key, room LUCID, coded and positive bits."""
    return np.dtype([("ts", "<f8"), ("room", "<i8"), ("lucid", "<i4", (levels,)), ("bits", "u1")])


def encode(events: CountedEvents) -> dict[bytes, bytes | int]:
    """The fields of the entry that holds ``events``."""
    levels = events.room_lucid.shape[1]
    records = np.zeros(len(events), dtype=record_dtype(levels))
    records["ts"], records["room"], records["lucid"] = events.ts, events.room, events.room_lucid
    records["bits"] = events.coded.astype(np.uint8) | (events.positives.astype(np.uint8) @ _BITS)
    return {b"levels": levels, b"events": records.tobytes()}


def decode(entries: list[dict[bytes, bytes]], levels: int) -> CountedEvents:
    """The events of entries' fields (:func:`encode`), in order."""
    if any(int(fields[b"levels"]) != levels for fields in entries):
        raise SharedStateError(
            f"an entry of {STREAM} has LUCIDs of another length than ranker.lucid.levels "
            f"({levels} here): all API replicas must share it"
        )
    records = np.frombuffer(b"".join(f[b"events"] for f in entries), dtype=record_dtype(levels))
    bits = records["bits"]
    return CountedEvents(
        ts=records["ts"].astype(np.float64),
        room=records["room"].astype(np.int64),
        room_lucid=records["lucid"].astype(np.int64),
        coded=(bits & 1).astype(bool),
        positives=(bits[:, None] & _BITS) > 0,
    )


def _stream_id(raw: bytes) -> tuple[int, int]:
    ms, seq = raw.split(b"-")
    return int(ms), int(seq)


class EngagementStream:
    """One replica's place in :data:`STREAM`, and its counter, which it keeps in step."""

    def __init__(
        self, client: redis.Redis, engagement: RoomEngagement, levels: int, max_age_s: float
    ) -> None:
        self.client = client
        self.engagement = engagement
        self.levels = levels
        self.max_age_s = max_age_s
        self._position = (0, 0)  # the last entry applied; 0-0: nothing yet
        self._read_at = -np.inf  # monotonic time of the last read that reached the end
        self._lock = threading.Lock()  # the position moves with the counter
        self._reading = threading.Lock()  # one catch-up at a time

    def append(self, pipe: redis.client.Pipeline, events: CountedEvents) -> float:
        """Queue the XADD of ``events`` on ``pipe``, then a read from this replica's position
        (its own entry included). Returns the time to pass, with the read's reply (the
        pipeline's last), to :meth:`applied`."""
        if len(events):
            pipe.xadd(STREAM, encode(events), maxlen=STREAM_MAXLEN, approximate=True)
        self._read(pipe)
        return time.monotonic()

    def applied(self, reply: list, read_at: float) -> None:
        """Count what a read queued by :meth:`append` returned; read on if it was cut short."""
        if self._apply(reply, read_at):
            with self._reading:
                self._catch_up()

    def catch_up(self) -> None:
        """Count every entry past this replica's position, in stream order."""
        with self._reading:
            self._catch_up()

    def fresh(self) -> None:
        """Catch up if the last read that reached the end is older than ``max_age_s``,
        unless another thread is reading now."""
        if time.monotonic() - self._read_at > self.max_age_s and self._reading.acquire(False):
            try:
                self._catch_up()
            finally:
                self._reading.release()

    def _catch_up(self) -> None:
        full = True
        while full:
            read_at = time.monotonic()
            full = self._apply(shared_call(self._read, self.client), read_at)

    def _read(self, target: redis.Redis | redis.client.Pipeline) -> list:
        """XRANGE of the entries after the position, run by ``target`` or queued on it."""
        ms, seq = self._position
        return target.xrange(STREAM, min=f"({ms}-{seq}", max="+", count=READ_COUNT)

    def _apply(self, entries: list[tuple[bytes, dict[bytes, bytes]]], read_at: float) -> bool:
        """Count the entries past the position (another read may have counted the first);
        True if the read was cut at :data:`READ_COUNT` (more may follow)."""
        with self._lock:
            first = bisect.bisect_right(entries, self._position, key=lambda e: _stream_id(e[0]))
            if first < len(entries):
                self.engagement.add(decode([fields for _, fields in entries[first:]], self.levels))
                self._position = _stream_id(entries[-1][0])
            full = len(entries) >= READ_COUNT
            if not full:
                self._read_at = max(self._read_at, read_at)
            return full
