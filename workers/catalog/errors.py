"""Which database errors are worth retrying: the catalog says, since only it knows the driver.

A task retried on any database error retries bad data too: a PostgreSQL
``DataError`` (a value too long for its column, a NUL in text) fails the same
way every time, only later, and holds its queue meanwhile. Only errors that a
later attempt can outlive are transient:

- the connection lost or refused (SQLAlchemy marks a dropped connection
  ``connection_invalidated``; psycopg raises a connection failure without a
  SQLSTATE, since the server never answered);
- PostgreSQL SQLSTATE classes 08 (connection exception), 40 (transaction
  rollback: serialization failure, deadlock), 53 (insufficient resources: too
  many connections, disk full), 57 (operator intervention: statement timeout,
  admin shutdown, the server starting), 58 (system error: I/O), and 55P03 (lock
  not available, a lock timeout);
- SQLite busy or locked past its busy timeout;
- SQLAlchemy's own pool timeout.

The catalog raises :class:`CatalogUnavailableError` (with the driver's error as its
cause) for these and lets every other error through unchanged, so a task's
retry policy names one exception class.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

TRANSIENT_SQLSTATE_CLASSES = ("08", "40", "53", "57", "58")
TRANSIENT_SQLSTATES = ("55P03",)
SQLITE_TRANSIENT = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


class CatalogUnavailableError(Exception):
    """The catalog could not be used just now; the same call may succeed later."""


def is_transient(exc: DBAPIError) -> bool:
    """Whether a later attempt may succeed where ``exc`` failed (see the module docstring)."""
    if exc.connection_invalidated:
        return True
    if not isinstance(exc, OperationalError):
        return False
    orig = exc.orig
    if isinstance(orig, sqlite3.OperationalError):
        return orig.sqlite_errorcode & 0xFF in SQLITE_TRANSIENT
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate is None:  # psycopg: the server never answered (refused, unreachable, dropped)
        return True
    return sqlstate[:2] in TRANSIENT_SQLSTATE_CLASSES or sqlstate in TRANSIENT_SQLSTATES


@contextmanager
def classified() -> Iterator[None]:
    """Raise :class:`CatalogUnavailableError` for a transient database error inside the block."""
    try:
        yield
    except PoolTimeout as exc:
        raise CatalogUnavailableError(f"catalog connection pool exhausted: {exc}") from exc
    except DBAPIError as exc:
        if is_transient(exc):
            raise CatalogUnavailableError(f"catalog unavailable: {exc.orig}") from exc
        raise
