"""The event log: every accepted event, durable and in order, as a catalog table.

**Why a catalog table, on SQLite and on PostgreSQL alike (not Redis Streams in
production).** An event is accepted when it is both recorded as received (the
``event_in`` idempotency ledger, which makes a client's retry a duplicate) and
appended to the log. Those two writes must be one transaction, or a crash
between them either loses the event (recorded, never logged: a retry is refused
as a duplicate) or trains it twice (logged, not recorded: a retry logs it
again). The ledger lives in the catalog, and a Redis Stream cannot take part in
a catalog transaction; nor is an acknowledged ``XADD`` durable under Redis's
default persistence (AOF fsync every second, or none). The trainer also reads
its codes from the catalog, so the log adds no service to run. What a stream
would give, fan-out to many consumers, the log does not need: the train queue
has one consumer.

**Positions.** Each append locks the log's head (one ``catalog_state`` row),
numbers its events from the head on and moves the head, in the transaction
that inserts them. Positions are therefore dense and in commit order: a reader
that reads up to the head it saw never misses a position that commits later
(a sequence would hand out numbers before commit, so a reader could pass a
number whose transaction then committed). Appends are serialized; one append is
one short transaction per ``POST /v1/events`` of up to 1000 events, and SQLite
serializes writers anyway. This is Monolith's Kafka offset: a trainer's
snapshot records the position it covers (``trainer.log_position``), and a
restarted trainer goes on from there.

**Parked events** wait, per ranker variant, for their room's codes. A parked
row is part of that variant's trainer state, which a restart restores from a
snapshot: the row records the log position at which the trainer trained or
dropped it (``resolved_at``), so :meth:`EventLog.rewind_parked` can put the
table back as it was at any snapshot's position.

**Dead letters** are the events the trainer cannot train, with the reason. A
dead letter is keyed by log position, so a replay that meets the same event
again records it once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from workers.catalog import schema as t
from workers.catalog.views import DeadLetter, LogEntry

RECEIVED = "event_in"  # the ledger kind of events accepted by the API


def _entry(row: t.EventLogEntry | t.ParkedEvent) -> LogEntry:
    return LogEntry(row.position, row.event_id, row.payload, row.appended_at)


class EventLog:
    """The event log, parked events and dead letters; mixed into :class:`Catalog`."""

    _write: Callable[[], AbstractContextManager[Session]]
    _read: Callable[[], AbstractContextManager[Session]]

    # --- the log ------------------------------------------------------------------------

    def append_events(self, events: Mapping[str, str]) -> list[str]:
        """Append the events (id -> JSON) not received before and record them as received,
        in one transaction; returns the ids appended, in order."""
        if not events:
            return []
        ids = list(events)
        now = time.time()
        with self._write() as s:
            head = s.get(t.CatalogState, t.LOG_HEAD, with_for_update=True)  # serializes appends
            assert head is not None and head.value is not None  # created by the schema
            # the ledger forgets old ids (maintenance); the log keeps a few until pruned
            known = set(
                s.scalars(
                    select(t.Processed.item_id).where(
                        t.Processed.kind == RECEIVED, t.Processed.item_id.in_(ids)
                    )
                )
            )
            known |= set(
                s.scalars(select(t.EventLogEntry.event_id).where(t.EventLogEntry.event_id.in_(ids)))
            )
            fresh = [i for i in ids if i not in known]
            start = int(head.value)
            s.add_all(t.Processed(kind=RECEIVED, item_id=i, processed_at=now) for i in fresh)
            s.add_all(
                t.EventLogEntry(position=start + k, event_id=i, payload=events[i], appended_at=now)
                for k, i in enumerate(fresh, start=1)
            )
            head.value = str(start + len(fresh))
        return fresh

    def log_head(self) -> int:
        """The position of the newest event appended (0 for an empty log)."""
        with self._read() as s:
            value = s.scalar(select(t.CatalogState.value).where(t.CatalogState.key == t.LOG_HEAD))
        return int(value or 0)

    def read_log(self, after: int, upto: int, limit: int) -> list[LogEntry]:
        """Up to ``limit`` entries with ``after < position <= upto``, in order."""
        with self._read() as s:
            rows = s.scalars(
                select(t.EventLogEntry)
                .where(t.EventLogEntry.position > after, t.EventLogEntry.position <= upto)
                .order_by(t.EventLogEntry.position)
                .limit(limit)
            )
            return [_entry(row) for row in rows]

    def prune_log(self, upto: int) -> int:
        """Delete the entries at positions up to ``upto``; returns how many."""
        with self._write() as s:
            result = s.execute(delete(t.EventLogEntry).where(t.EventLogEntry.position <= upto))
        return int(result.rowcount or 0)

    # --- parked events ------------------------------------------------------------------

    def parked(self, variant: str) -> list[LogEntry]:
        """The events ``variant``'s trainer holds parked, oldest position first."""
        with self._read() as s:
            rows = s.scalars(
                select(t.ParkedEvent)
                .where(t.ParkedEvent.variant == variant, t.ParkedEvent.resolved_at.is_(None))
                .order_by(t.ParkedEvent.position)
            )
            return [_entry(row) for row in rows]

    def parked_counts(self) -> dict[str, int]:
        """Events held parked, per variant."""
        with self._read() as s:
            rows = s.execute(
                select(t.ParkedEvent.variant, func.count())
                .where(t.ParkedEvent.resolved_at.is_(None))
                .group_by(t.ParkedEvent.variant)
            )
            return {variant: int(count) for variant, count in rows}

    def record_chunk(
        self,
        variant: str,
        position: int,
        park: Sequence[tuple[LogEntry, str]],
        resolved: Mapping[int, str],
        dead: Sequence[DeadLetter],
    ) -> None:
        """What ``variant``'s trainer decided for the log up to ``position``, in one transaction:
        events to ``park`` (with their room ids), parked positions ``resolved`` (-> trained,
        dropped or dead) and ``dead`` letters. Recording the same again changes nothing (a
        retry after a commit whose answer was lost)."""
        with self._write() as s:
            known = set(
                s.scalars(
                    select(t.ParkedEvent.position).where(
                        t.ParkedEvent.variant == variant,
                        t.ParkedEvent.position.in_([entry.position for entry, _ in park]),
                    )
                )
            )
            s.add_all(
                t.ParkedEvent(
                    variant=variant,
                    position=entry.position,
                    event_id=entry.event_id,
                    room_id=room_id,
                    payload=entry.payload,
                    appended_at=entry.appended_at,
                )
                for entry, room_id in park
                if entry.position not in known
            )
            for outcome in sorted(set(resolved.values())):
                positions = [p for p, o in resolved.items() if o == outcome]
                s.execute(
                    update(t.ParkedEvent)
                    .where(t.ParkedEvent.variant == variant, t.ParkedEvent.position.in_(positions))
                    .values(resolved_at=position, outcome=outcome)
                )
            self._add_dead_letters(s, dead)

    def rewind_parked(self, variant: str, position: int) -> None:
        """Put ``variant``'s parked events back as they were when its trainer was at
        ``position`` (the snapshot it resumed from): what was parked later goes, what was
        trained or dropped later is parked again."""
        with self._write() as s:
            s.execute(
                delete(t.ParkedEvent).where(
                    t.ParkedEvent.variant == variant, t.ParkedEvent.position > position
                )
            )
            s.execute(
                update(t.ParkedEvent)
                .where(t.ParkedEvent.variant == variant, t.ParkedEvent.resolved_at > position)
                .values(resolved_at=None, outcome=None)
            )

    def forget_parked(self, variant: str, upto: int) -> int:
        """Delete ``variant``'s parked events resolved at positions up to ``upto`` (every
        snapshot a restart could resume from includes them); returns how many."""
        with self._write() as s:
            result = s.execute(
                delete(t.ParkedEvent).where(
                    t.ParkedEvent.variant == variant, t.ParkedEvent.resolved_at <= upto
                )
            )
        return int(result.rowcount or 0)

    # --- dead letters -------------------------------------------------------------------

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """The newest ``limit`` dead letters, newest first."""
        with self._read() as s:
            rows = s.scalars(
                select(t.DeadLetter).order_by(t.DeadLetter.created_at.desc()).limit(limit)
            )
            return [
                DeadLetter(r.position, r.event_id, r.reason, r.payload, r.created_at) for r in rows
            ]

    @staticmethod
    def _add_dead_letters(s: Session, letters: Iterable[DeadLetter]) -> None:
        """Insert ``letters`` whose positions have none yet (a replay meets them again)."""
        letters = {d.position: d for d in letters}
        known = set(
            s.scalars(select(t.DeadLetter.position).where(t.DeadLetter.position.in_(letters)))
        )
        now = time.time()
        s.add_all(
            t.DeadLetter(
                position=d.position,
                event_id=d.event_id,
                reason=d.reason,
                payload=d.payload,
                created_at=now,
            )
            for d in letters.values()
            if d.position not in known
        )
