"""Engines for the catalog: SQLite (WAL) by default, PostgreSQL by URL, same code.

SQLite gets WAL (readers never block the writer), a busy timeout, foreign keys,
and ``BEGIN IMMEDIATE`` on the writer engine, so a write transaction takes the
write lock up front instead of failing when it upgrades from a read lock while
another process writes. Readers use a second engine with ordinary deferred
transactions.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

SQLITE_PRAGMAS = ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON", "busy_timeout=30000")


def apply_sqlite_pragmas(engine: Engine) -> None:
    """WAL (readers never block the writer) and a 30 s busy timeout on every new connection."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:
        cursor = dbapi_conn.cursor()
        for pragma in SQLITE_PRAGMAS:
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()


def _sqlite_engine(url: str, *, immediate: bool) -> Engine:
    engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
    apply_sqlite_pragmas(engine)

    @event.listens_for(engine, "connect")
    def _autocommit_driver(dbapi_conn, _record) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves

    @event.listens_for(engine, "begin")
    def _on_begin(conn) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def make_engines(url: str) -> tuple[Engine, Engine]:
    """(writer, reader) engines for ``url``; the same engine twice where the database allows."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        return _sqlite_engine(url, immediate=True), _sqlite_engine(url, immediate=False)
    engine = create_engine(url, pool_pre_ping=True)
    return engine, engine
