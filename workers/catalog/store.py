"""The catalog service: rooms, slices, codes, codebooks, the idempotency ledger, the event log.

One class that tasks, the command line and the API share. Every write is one
transaction; every read of codes joins on the active codebook version inside
one transaction, so callers see one version's codes at a time. A transient
database error leaves every method as :class:`CatalogUnavailableError`, any other as
itself (:mod:`workers.catalog.errors`). The event log's methods live in
:mod:`workers.catalog.eventlog`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager

import numpy as np
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from quantizer import format_lucid, parse_lucid, room_lucid
from workers.catalog import schema as t
from workers.catalog.engine import make_engines
from workers.catalog.errors import classified
from workers.catalog.eventlog import EventLog
from workers.catalog.views import CodebookRecord, RoomView, SliceRecord, SliceView

ACTIVE_KEY = "active_codebook"


def _vec(blob: bytes | None) -> np.ndarray | None:
    return None if blob is None else np.frombuffer(blob, dtype=np.float32).copy()


def _lucid(text: str | None) -> tuple[int, ...] | None:
    return None if text is None else parse_lucid(text)


class Catalog(EventLog):
    """SQLAlchemy-backed catalog; ``url`` is any SQLAlchemy URL (sqlite:///..., postgresql+psycopg://...)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._writer, self._reader = make_engines(url)
        with classified(), self._writer.begin() as conn:
            t.upgrade(conn)

    def close(self) -> None:
        self._writer.dispose()
        self._reader.dispose()

    @contextmanager
    def _write(self) -> Iterator[Session]:
        with (
            classified(),
            Session(self._writer, expire_on_commit=False) as session,
            session.begin(),
        ):
            yield session

    @contextmanager
    def _read(self) -> Iterator[Session]:
        with classified(), Session(self._reader) as session, session.begin():
            yield session

    # --- idempotency ------------------------------------------------------------------

    def unprocessed(self, kind: str, ids: Sequence[str]) -> list[str]:
        """The ``ids`` not yet marked processed under ``kind``, in their order, without repeats."""
        with self._read() as s:
            done = set(
                s.scalars(
                    select(t.Processed.item_id).where(
                        t.Processed.kind == kind, t.Processed.item_id.in_(set(ids))
                    )
                )
            )
        return [i for i in dict.fromkeys(ids) if i not in done]

    def forget_processed(self, before: float) -> int:
        """Drop ledger entries recorded before ``before`` (wall time); return how many.

        A redelivery or a client's retry comes within minutes, so entries older than
        the retention protect nothing and only grow the table.
        """
        with self._write() as s:
            result = s.execute(delete(t.Processed).where(t.Processed.processed_at < before))
        return int(result.rowcount or 0)

    def mark_processed(self, kind: str, ids: Iterable[str]) -> int:
        """Record ``ids``; return how many were new (repeats and known ids are skipped)."""
        ids = list(dict.fromkeys(ids))
        with self._write() as s:
            known = set(
                s.scalars(
                    select(t.Processed.item_id).where(
                        t.Processed.kind == kind, t.Processed.item_id.in_(ids)
                    )
                )
            )
            now = time.time()
            fresh = [i for i in ids if i not in known]
            s.add_all(t.Processed(kind=kind, item_id=i, processed_at=now) for i in fresh)
        return len(fresh)

    # --- codebooks --------------------------------------------------------------------

    def register_codebook(
        self,
        version: str,
        path: str,
        *,
        levels: int,
        codes: int,
        dim: int,
        parent_version: str | None = None,
    ) -> None:
        """Add a codebook version to the registry (a no-op if it is there already)."""
        with self._write() as s:
            if s.get(t.Codebook, version) is None:
                s.add(
                    t.Codebook(
                        version=version,
                        path=path,
                        levels=levels,
                        codes=codes,
                        dim=dim,
                        parent_version=parent_version,
                        created_at=time.time(),
                    )
                )

    def active_codebook(self) -> CodebookRecord | None:
        with self._read() as s:
            return self._active(s)

    def _active(self, s: Session) -> CodebookRecord | None:
        version = s.scalar(select(t.CatalogState.value).where(t.CatalogState.key == ACTIVE_KEY))
        row = s.get(t.Codebook, version) if version else None
        if row is None:
            return None
        return CodebookRecord(
            row.version,
            row.path,
            row.levels,
            row.codes,
            row.dim,
            row.parent_version,
            row.created_at,
            row.activated_at,
        )

    def codebooks(self) -> list[CodebookRecord]:
        with self._read() as s:
            rows = s.scalars(select(t.Codebook).order_by(t.Codebook.created_at))
            return [
                CodebookRecord(
                    r.version,
                    r.path,
                    r.levels,
                    r.codes,
                    r.dim,
                    r.parent_version,
                    r.created_at,
                    r.activated_at,
                )
                for r in rows
            ]

    def activate(self, version: str) -> None:
        """Make ``version`` the active codebook: one statement, seen by readers all at once."""
        with self._write() as s:
            if s.get(t.Codebook, version) is None:
                raise KeyError(f"codebook {version} is not registered")
            state = s.get(t.CatalogState, ACTIVE_KEY)
            if state is None:
                s.add(t.CatalogState(key=ACTIVE_KEY, value=version))
            else:
                state.value = version
            s.execute(
                update(t.Codebook)
                .where(t.Codebook.version == version)
                .values(activated_at=time.time())
            )
            s.execute(update(t.Room).values(updated_at=time.time()))

    # --- slices -----------------------------------------------------------------------

    def known_slices(self, ids: Sequence[str]) -> set[str]:
        with self._read() as s:
            return set(s.scalars(select(t.Slice.slice_id).where(t.Slice.slice_id.in_(ids))))

    def store_encoded(self, slices: Sequence[SliceRecord], codebook_version: str | None) -> int:
        """Store new slices (ids already stored are skipped), their codes and their rooms.

        Returns how many slices were new. Room aggregates and the room LUCID are
        updated in the same transaction, under a row lock on PostgreSQL.
        """
        if not slices:
            return 0
        with self._write() as s:
            known = set(
                s.scalars(
                    select(t.Slice.slice_id).where(
                        t.Slice.slice_id.in_([x.slice_id for x in slices])
                    )
                )
            )
            fresh = [
                x for x in dict((x.slice_id, x) for x in slices).values() if x.slice_id not in known
            ]
            now = time.time()
            for x in fresh:
                s.add(
                    t.Slice(
                        slice_id=x.slice_id,
                        room_id=x.room_id,
                        ts=x.ts,
                        status="encoded",
                        embedding=np.asarray(x.embedding, np.float32).tobytes(),
                        created_at=now,
                    )
                )
            s.flush()
            if codebook_version is not None:
                s.add_all(
                    t.SliceCode(
                        slice_id=x.slice_id,
                        codebook_version=codebook_version,
                        lucid=format_lucid(x.lucid),
                    )
                    for x in fresh
                    if x.lucid
                )
            by_room: dict[str, list[SliceRecord]] = {}
            for x in fresh:
                by_room.setdefault(x.room_id, []).append(x)
            for room_id, members in by_room.items():
                self._add_to_room(s, room_id, members, now)
            s.flush()
            if codebook_version is not None:
                self._recompute_room_codes(s, codebook_version, by_room)
        return len(fresh)

    def _add_to_room(
        self, s: Session, room_id: str, members: list[SliceRecord], now: float
    ) -> None:
        room = s.get(t.Room, room_id, with_for_update=True)
        total = np.sum([np.asarray(m.embedding, np.float32) for m in members], axis=0)
        first, last = min(m.ts for m in members), max(m.ts for m in members)
        if room is None:
            s.add(
                t.Room(
                    room_id=room_id,
                    status="live",
                    started_at=first,
                    last_slice_at=last,
                    n_slices=len(members),
                    embedding_sum=total.astype(np.float32).tobytes(),
                    updated_at=now,
                )
            )
            return
        previous = _vec(room.embedding_sum)
        room.embedding_sum = (
            (total if previous is None else previous + total).astype(np.float32).tobytes()
        )
        room.n_slices += len(members)
        room.started_at = min(room.started_at, first)
        room.last_slice_at = max(room.last_slice_at, last)
        room.updated_at = now

    def _recompute_room_codes(self, s: Session, version: str, room_ids: Iterable[str]) -> None:
        """Room LUCID (vote) and latest slice LUCID of each room, under ``version``."""
        for room_id in room_ids:
            rows = (
                s.execute(
                    select(t.SliceCode.lucid)
                    .join(t.Slice, t.Slice.slice_id == t.SliceCode.slice_id)
                    .where(t.Slice.room_id == room_id, t.SliceCode.codebook_version == version)
                    .order_by(t.Slice.ts, t.Slice.slice_id)
                )
                .scalars()
                .all()
            )
            if not rows:
                continue
            codes = np.array([parse_lucid(r) for r in rows])
            s.merge(
                t.RoomCode(
                    room_id=room_id,
                    codebook_version=version,
                    room_lucid=format_lucid(room_lucid(codes)),
                    latest_slice_lucid=rows[-1],
                )
            )
            s.execute(
                update(t.Room).where(t.Room.room_id == room_id).values(updated_at=time.time())
            )

    def store_failed(self, slice_id: str, room_id: str, ts: float, reason: str) -> bool:
        """Record a slice that cannot be encoded, with its reason; False if the id is known,
        or if either id is none the catalog can store (the task's result holds the reason)."""
        if not (t.storable_id(slice_id) and t.storable_id(room_id)):
            return False
        with self._write() as s:
            if s.get(t.Slice, slice_id) is not None:
                return False
            s.add(
                t.Slice(
                    slice_id=slice_id,
                    room_id=room_id,
                    ts=ts,
                    status="failed",
                    failure_reason=reason[:2000],
                    created_at=time.time(),
                )
            )
        return True

    def slice(self, slice_id: str) -> SliceView | None:
        with self._read() as s:
            row = s.get(t.Slice, slice_id)
            if row is None:
                return None
            active = self._active(s)
            code = None
            if active is not None:
                code = s.get(t.SliceCode, (slice_id, active.version))
            return SliceView(
                row.slice_id,
                row.room_id,
                row.ts,
                row.status,
                row.failure_reason,
                _lucid(code.lucid) if code else None,
                active.version if code and active else None,
            )

    def slice_codes(self, slice_ids: Iterable[str]) -> dict[str, tuple[int, ...]]:
        """The codes of the given slices under the active codebook (slices without one left out)."""
        with self._read() as s:
            active = self._active(s)
            if active is None:
                return {}
            rows = s.execute(
                select(t.SliceCode.slice_id, t.SliceCode.lucid).where(
                    t.SliceCode.codebook_version == active.version,
                    t.SliceCode.slice_id.in_(set(slice_ids)),
                )
            )
            return {slice_id: parse_lucid(lucid) for slice_id, lucid in rows}

    def store_codes(
        self, version: str, codes: Sequence[tuple[str, tuple[int, ...]]], *, rooms: bool = True
    ) -> int:
        """Add ``(slice_id, lucid)`` codes under ``version``; refresh those rooms' codes too.

        A bulk re-code passes ``rooms=False`` page by page and calls
        :meth:`refresh_room_codes` once at the end.
        """
        with self._write() as s:
            ids = [slice_id for slice_id, _ in codes]
            have = set(
                s.scalars(
                    select(t.SliceCode.slice_id).where(
                        t.SliceCode.codebook_version == version, t.SliceCode.slice_id.in_(ids)
                    )
                )
            )
            fresh = [(i, c) for i, c in codes if i not in have]
            s.add_all(
                t.SliceCode(slice_id=i, codebook_version=version, lucid=format_lucid(c))
                for i, c in fresh
            )
            s.flush()
            if rooms:
                room_ids = set(
                    s.scalars(
                        select(t.Slice.room_id).where(t.Slice.slice_id.in_([i for i, _ in fresh]))
                    )
                )
                self._recompute_room_codes(s, version, sorted(room_ids))
        return len(fresh)

    def refresh_room_codes(self, version: str) -> int:
        """Recompute every room's codes under ``version``; returns the number of rooms."""
        with self._write() as s:
            room_ids = list(s.scalars(select(t.Room.room_id)))
            self._recompute_room_codes(s, version, room_ids)
        return len(room_ids)

    def uncoded_slices(self, version: str, limit: int = 1000) -> list[tuple[str, np.ndarray]]:
        """Encoded slices with no code under ``version`` yet (pending), oldest first."""
        with self._read() as s:
            coded = select(t.SliceCode.slice_id).where(t.SliceCode.codebook_version == version)
            rows = s.execute(
                select(t.Slice.slice_id, t.Slice.embedding)
                .where(t.Slice.status == "encoded", t.Slice.slice_id.not_in(coded))
                .order_by(t.Slice.ts)
                .limit(limit)
            ).all()
        return [(slice_id, _vec(blob)) for slice_id, blob in rows]  # type: ignore[misc]

    def iter_embeddings(self, batch_size: int = 10_000) -> Iterator[tuple[list[str], np.ndarray]]:
        """All encoded slices' ids and embeddings, in batches (keyset pagination by id)."""
        last = ""
        while True:
            with self._read() as s:
                rows = s.execute(
                    select(t.Slice.slice_id, t.Slice.embedding)
                    .where(t.Slice.status == "encoded", t.Slice.slice_id > last)
                    .order_by(t.Slice.slice_id)
                    .limit(batch_size)
                ).all()
            if not rows:
                return
            last = rows[-1][0]
            yield [r[0] for r in rows], np.stack([_vec(r[1]) for r in rows])

    def count_slices(self, status: str | None = None) -> int:
        with self._read() as s:
            query = select(func.count()).select_from(t.Slice)
            if status:
                query = query.where(t.Slice.status == status)
            return int(s.scalar(query) or 0)

    def code_pairs(
        self, table: str, old: str, new: str
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Old and new codes of the same rooms (``table="room"``, weighted by slice count) or
        slices (``"slice"``, weight 1): what the ranker's prefix-row migration needs."""
        with self._read() as s:
            if table == "room":
                a, b = t.RoomCode.__table__.alias("a"), t.RoomCode.__table__.alias("b")
                rows = s.execute(
                    select(a.c.room_lucid, b.c.room_lucid, t.Room.n_slices)
                    .join(b, (b.c.room_id == a.c.room_id) & (b.c.codebook_version == new))
                    .join(t.Room, t.Room.room_id == a.c.room_id)
                    .where(a.c.codebook_version == old)
                ).all()
            else:
                a, b = t.SliceCode.__table__.alias("a"), t.SliceCode.__table__.alias("b")
                rows = s.execute(
                    select(a.c.lucid, b.c.lucid)
                    .join(b, (b.c.slice_id == a.c.slice_id) & (b.c.codebook_version == new))
                    .where(a.c.codebook_version == old)
                ).all()
        old_codes = np.array([parse_lucid(r[0]) for r in rows], dtype=np.int64)
        new_codes = np.array([parse_lucid(r[1]) for r in rows], dtype=np.int64)
        counts = np.array([r[2] if table == "room" else 1 for r in rows], dtype=np.float64)
        return old_codes, new_codes, counts

    def get_state(self, key: str) -> str | None:
        with self._read() as s:
            return s.scalar(select(t.CatalogState.value).where(t.CatalogState.key == key))

    def set_state(self, key: str, value: str) -> None:
        with self._write() as s:
            s.merge(t.CatalogState(key=key, value=value))

    # --- leases ---------------------------------------------------------------------

    def acquire_lease(self, name: str, owner: str, ttl_s: float) -> tuple[bool, str]:
        """Hold the lease ``name`` for ``ttl_s`` seconds (renewing one's own lease).

        Returns (acquired, current holder). The single-consumer rule of the train
        queue rests on this: a second trainer process finds the lease held.
        """
        key = f"lease:{name}"
        now = time.time()
        with self._write() as s:
            row = s.get(t.CatalogState, key, with_for_update=True)
            holder, _, until = (row.value or "").rpartition("|") if row else ("", "", "0")
            if row is not None and holder != owner and float(until or 0) > now:
                return False, holder
            value = f"{owner}|{now + ttl_s}"
            if row is None:
                s.add(t.CatalogState(key=key, value=value))
            else:
                row.value = value
        return True, owner

    def release_lease(self, name: str, owner: str) -> None:
        """Give the lease up if ``owner`` holds it."""
        with self._write() as s:
            row = s.get(t.CatalogState, f"lease:{name}", with_for_update=True)
            if row is not None and (row.value or "").rpartition("|")[0] == owner:
                s.delete(row)

    # --- rooms ------------------------------------------------------------------------

    def room(self, room_id: str) -> RoomView | None:
        rooms = self.rooms(room_ids=[room_id])
        return rooms[0] if rooms else None

    def rooms(
        self,
        *,
        status: str | None = None,
        updated_since: float | None = None,
        room_ids: Sequence[str] | None = None,
    ) -> list[RoomView]:
        """Rooms with their codes under the active codebook, read in one transaction."""
        with self._read() as s:
            active = self._active(s)
            version = active.version if active else None
            query = select(t.Room, t.RoomCode).outerjoin(
                t.RoomCode,
                (t.RoomCode.room_id == t.Room.room_id) & (t.RoomCode.codebook_version == version),
            )
            if status:
                query = query.where(t.Room.status == status)
            if updated_since is not None:
                query = query.where(t.Room.updated_at > updated_since)
            if room_ids is not None:
                query = query.where(t.Room.room_id.in_(room_ids))
            return [self._room_view(room, code, version) for room, code in s.execute(query)]

    @staticmethod
    def _room_view(room: t.Room, code: t.RoomCode | None, version: str | None) -> RoomView:
        total = _vec(room.embedding_sum)
        norm = float(np.linalg.norm(total)) if total is not None else 0.0
        return RoomView(
            room.room_id,
            room.status,
            room.started_at,
            room.ended_at,
            room.last_slice_at,
            room.n_slices,
            room.updated_at,
            total / norm if norm > 0 else None,
            _lucid(code.room_lucid) if code else None,
            _lucid(code.latest_slice_lucid) if code else None,
            version if code else None,
        )

    def end_room(self, room_id: str, now: float | None = None) -> bool:
        """Mark a live room ended; False if it does not exist (ending twice is fine)."""
        now = time.time() if now is None else now
        with self._write() as s:
            room = s.get(t.Room, room_id, with_for_update=True)
            if room is None:
                return False
            if room.status != "ended":
                room.status, room.ended_at, room.updated_at = "ended", now, time.time()
        return True

    def end_idle_rooms(self, now: float, idle_s: float) -> list[str]:
        """End live rooms whose last slice is older than ``idle_s``; return their ids."""
        with self._write() as s:
            ids = list(
                s.scalars(
                    select(t.Room.room_id).where(
                        t.Room.status == "live", t.Room.last_slice_at < now - idle_s
                    )
                )
            )
            if ids:
                s.execute(
                    update(t.Room)
                    .where(t.Room.room_id.in_(ids))
                    .values(status="ended", ended_at=now, updated_at=time.time())
                )
        return ids
