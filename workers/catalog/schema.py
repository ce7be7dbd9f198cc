"""The catalog's tables and their versioned upgrades.

Schema versions are kept in an explicit ``schema_version`` table with an ordered
list of upgrade steps, not Alembic: the schema is small, owned by this one
package, and must run unchanged on SQLite and PostgreSQL from the same code. On
open, :func:`upgrade` applies every step past the stored version in one
transaction, so two processes starting together cannot both apply a step.

Codes live in their own tables keyed by codebook version (``slice_codes``,
``room_codes``). A retrain writes the new version's codes beside the old ones
and then flips ``catalog_state.active_codebook`` in one transaction, so a reader
that joins on the active version sees the old codes or the new, never a mix.

The event log (``event_log``), the events parked until their room has codes
(``parked_events``) and the dead letters (``dead_letters``) are described in
:mod:`workers.catalog.eventlog`.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import (
    BigInteger,
    Connection,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    insert,
    select,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# every id column (rooms, slices, events) is String(ID_LENGTH): PostgreSQL enforces the
# width and refuses NUL in text, SQLite does neither, so ids are held to both everywhere
ID_LENGTH = 128


def storable_id(value: object) -> bool:
    """Whether ``value`` can be an id in the catalog on every backend."""
    return isinstance(value, str) and 0 < len(value) <= ID_LENGTH and "\x00" not in value


class Base(DeclarativeBase):
    """Declarative base of the catalog tables."""


class SchemaVersion(Base):
    __tablename__ = "schema_version"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(Integer)


class CatalogState(Base):
    """Small key/value facts, such as the active codebook version."""

    __tablename__ = "catalog_state"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str | None] = mapped_column(Text, nullable=True)


class Room(Base):
    __tablename__ = "rooms"
    room_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default="live")  # live | ended
    started_at: Mapped[float] = mapped_column(Float)
    ended_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    last_slice_at: Mapped[float] = mapped_column(Float)
    n_slices: Mapped[int] = mapped_column(Integer, default=0)
    # sum of the slice embeddings (float32 bytes): the room embedding is its direction
    embedding_sum: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    updated_at: Mapped[float] = mapped_column(Float, index=True)


class Slice(Base):
    __tablename__ = "slices"
    slice_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    room_id: Mapped[str] = mapped_column(String(ID_LENGTH), index=True)
    ts: Mapped[float] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(16))  # encoded | failed
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    failure_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[float] = mapped_column(Float)


class Codebook(Base):
    """The registry of codebook versions and where their folders are."""

    __tablename__ = "codebooks"
    version: Mapped[str] = mapped_column(String(64), primary_key=True)
    path: Mapped[str] = mapped_column(Text)
    levels: Mapped[int] = mapped_column(Integer)
    codes: Mapped[int] = mapped_column(Integer)
    dim: Mapped[int] = mapped_column(Integer)
    parent_version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[float] = mapped_column(Float)
    activated_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class SliceCode(Base):
    __tablename__ = "slice_codes"
    slice_id: Mapped[str] = mapped_column(ForeignKey("slices.slice_id"), primary_key=True)
    codebook_version: Mapped[str] = mapped_column(ForeignKey("codebooks.version"), primary_key=True)
    lucid: Mapped[str] = mapped_column(String(128))


class RoomCode(Base):
    __tablename__ = "room_codes"
    room_id: Mapped[str] = mapped_column(ForeignKey("rooms.room_id"), primary_key=True)
    codebook_version: Mapped[str] = mapped_column(ForeignKey("codebooks.version"), primary_key=True)
    room_lucid: Mapped[str] = mapped_column(String(128))
    latest_slice_lucid: Mapped[str] = mapped_column(String(128))


class Processed(Base):
    """Ids already handled (events, task deliveries): the idempotency ledger."""

    __tablename__ = "processed"
    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    item_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    processed_at: Mapped[float] = mapped_column(Float)


class EventLogEntry(Base):
    """One accepted event, at its position in the log (dense, in commit order)."""

    __tablename__ = "event_log"
    position: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    event_id: Mapped[str] = mapped_column(String(ID_LENGTH), unique=True)
    payload: Mapped[str] = mapped_column(Text)  # the event as JSON
    appended_at: Mapped[float] = mapped_column(Float)


class ParkedEvent(Base):
    """An event a variant's trainer holds until its room has codes; ``resolved_at`` is the
    trainer's log position when it trained or dropped it (NULL while parked)."""

    __tablename__ = "parked_events"
    variant: Mapped[str] = mapped_column(String(64), primary_key=True)
    position: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    event_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    room_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    payload: Mapped[str] = mapped_column(Text)
    appended_at: Mapped[float] = mapped_column(Float)
    resolved_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    outcome: Mapped[str | None] = mapped_column(String(16), nullable=True)  # trained|dropped|dead


class DeadLetter(Base):
    """A logged event the trainer cannot train, kept with its reason for an operator."""

    __tablename__ = "dead_letters"
    position: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    event_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    reason: Mapped[str] = mapped_column(Text)
    payload: Mapped[str] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Float, index=True)


Index("ix_rooms_status_last", Room.status, Room.last_slice_at)
Index("ix_slice_codes_version", SliceCode.codebook_version)
PROCESSED_AT = Index("ix_processed_at", Processed.processed_at)  # maintenance prunes by age
# where the next appended event goes: one row, locked by each append (see eventlog.py)
LOG_HEAD = "event_log_head"
EVENT_LOG_TABLES = (EventLogEntry, ParkedEvent, DeadLetter)


def _create_v1(conn: Connection) -> None:
    tables = [t for t in Base.metadata.sorted_tables if t.name not in _LATER_TABLES]
    Base.metadata.create_all(conn, tables=tables)


def _index_processed_at(conn: Connection) -> None:
    """v2: the ledger is pruned by age; catalogs created at v2 already have the index."""
    PROCESSED_AT.create(conn, checkfirst=True)


def _event_log(conn: Connection) -> None:
    """v3: the event log, parked events, dead letters, and the log's head at position 0."""
    Base.metadata.create_all(conn, tables=[m.__table__ for m in EVENT_LOG_TABLES])
    conn.execute(insert(CatalogState).values(key=LOG_HEAD, value="0"))


_LATER_TABLES = {m.__tablename__ for m in EVENT_LOG_TABLES}
# UPGRADES[i] takes the schema from version i to i + 1.
UPGRADES: list[Callable[[Connection], None]] = [_create_v1, _index_processed_at, _event_log]
SCHEMA_VERSION = len(UPGRADES)


def stored_version(conn: Connection) -> int:
    """The schema version recorded in the database (0 for an empty one)."""
    if not conn.dialect.has_table(conn, SchemaVersion.__tablename__):
        return 0
    return int(conn.execute(select(SchemaVersion.version)).scalar_one_or_none() or 0)


def upgrade(conn: Connection) -> int:
    """Apply the missing upgrade steps inside the caller's transaction; return the version."""
    current = stored_version(conn)
    if current > SCHEMA_VERSION:
        raise RuntimeError(
            f"catalog schema is version {current}, this lucidrec knows up to {SCHEMA_VERSION}: "
            "upgrade lucidrec before opening this catalog"
        )
    for step in UPGRADES[current:]:
        step(conn)
    if current != SCHEMA_VERSION:
        conn.execute(text("DELETE FROM schema_version"))
        conn.execute(SchemaVersion.__table__.insert().values(id=1, version=SCHEMA_VERSION))
    return SCHEMA_VERSION
