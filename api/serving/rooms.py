"""The catalog's rooms and codes, cached in memory and refreshed incrementally.

Every ``interval_s`` the cache asks the catalog for rooms updated since its
previous query, minus a lookback window: a transaction stamps ``updated_at``
before it commits, so a row can appear up to that long after its stamp. After
a quiet spell the window holds nothing and a refresh costs one indexed query
that returns no rows; rows read again inside the window are compared and only
real changes rebuild the arrays. Readers
get an immutable :class:`RoomTable` of arrays, rebuilt only when something
changed: a request never sees a half-applied refresh, and all rooms in it come
from one catalog read, hence one codebook version.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np

from quantizer import format_lucid
from ranker import id_keys
from workers.catalog import Catalog, RoomView

LOOKBACK_S = 5.0


@dataclass(frozen=True)
class RoomTable:
    """All known rooms as arrays; rows without codes have ``coded`` False."""

    ids: list[str]
    keys: np.ndarray  # (n,) int64 ranker keys of the ids, hashed once per build
    index: dict[str, int]
    live: np.ndarray  # (n,) bool
    coded: np.ndarray  # (n,) bool
    room_lucid: np.ndarray  # (n, L) int64, zeros where not coded
    slice_lucid: np.ndarray  # (n, L)
    started_at: np.ndarray  # (n,)
    embedding: np.ndarray  # (n, d) float32 unit rows, zeros where unknown
    codebook_version: str | None
    lucid_text: list[str]  # room LUCID as written in responses ("12-3-40-7"), "" if not coded
    slice_lucid_text: list[str]

    @classmethod
    def build(cls, rooms: list[RoomView], levels: int) -> RoomTable:
        ids = [r.room_id for r in rooms]
        dim = next((len(r.embedding) for r in rooms if r.embedding is not None), 1)
        embedding = np.zeros((len(rooms), dim), dtype=np.float32)
        room_lucid = np.zeros((len(rooms), levels), dtype=np.int64)
        slice_lucid = np.zeros_like(room_lucid)
        coded = np.zeros(len(rooms), dtype=bool)
        for i, r in enumerate(rooms):
            if r.embedding is not None and len(r.embedding) == dim:
                embedding[i] = r.embedding
            has_codes = r.room_lucid is not None and r.latest_slice_lucid is not None
            if has_codes and len(r.room_lucid) == levels:
                room_lucid[i], slice_lucid[i], coded[i] = r.room_lucid, r.latest_slice_lucid, True
        versions = {r.codebook_version for r in rooms if r.codebook_version}
        room_text = [format_lucid(c) if ok else "" for c, ok in zip(room_lucid, coded, strict=True)]
        slice_text = [
            format_lucid(c) if ok else "" for c, ok in zip(slice_lucid, coded, strict=True)
        ]
        return cls(
            ids=ids,
            keys=id_keys(ids),
            index={room_id: i for i, room_id in enumerate(ids)},
            live=np.array([r.status == "live" for r in rooms], dtype=bool),
            coded=coded,
            room_lucid=room_lucid,
            slice_lucid=slice_lucid,
            started_at=np.array([r.started_at for r in rooms], dtype=np.float64),
            embedding=embedding,
            codebook_version=max(versions) if versions else None,
            lucid_text=room_text,
            slice_lucid_text=slice_text,
        )


class RoomCache:
    """Rooms by id, kept current from the catalog; :meth:`table` is what requests read."""

    def __init__(self, catalog: Catalog, levels: int, interval_s: float) -> None:
        self.catalog = catalog
        self.levels = levels
        self.interval_s = interval_s
        self._rooms: dict[str, RoomView] = {}
        self._last_query: float | None = None
        self._next = 0.0
        self._lock = threading.Lock()
        self._table = RoomTable.build([], levels)

    def table(self) -> RoomTable:
        """The current rooms, refreshed first if the interval has passed."""
        if time.monotonic() >= self._next:
            self.refresh()
        return self._table

    def refresh(self) -> int:
        """Pull rooms changed since the last refresh; returns how many really changed."""
        with self._lock:
            self._next = time.monotonic() + self.interval_s
            since = None if self._last_query is None else self._last_query - LOOKBACK_S
            self._last_query = time.time()
            changed = [
                r
                for r in self.catalog.rooms(updated_since=since)
                if (known := self._rooms.get(r.room_id)) is None or known.updated_at != r.updated_at
            ]
            if not changed:
                return 0
            active = self.catalog.active_codebook()
            version = active.version if active else None
            for room in changed:
                self._rooms[room.room_id] = room
            if self._table.codebook_version not in (None, version):
                # a codebook switch touches every room; read them all in one go
                self._rooms = {r.room_id: r for r in self.catalog.rooms()}
            self._table = RoomTable.build(list(self._rooms.values()), self.levels)
            return len(changed)
