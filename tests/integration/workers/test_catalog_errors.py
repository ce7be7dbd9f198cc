"""Which database errors are transient, told from real PostgreSQL and SQLite errors: a lost
connection, a serialization failure, a deadlock and timeouts are; bad data is not."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DataError, DBAPIError

from tests.integration.services import PG_ADMIN_URL, postgres_database
from workers.catalog import Catalog, CatalogUnavailableError
from workers.catalog.errors import is_transient


@pytest.fixture(scope="module")
def pg() -> Iterator[str]:
    with postgres_database() as url:
        yield url


@pytest.fixture
def engine(pg: str) -> Iterator[Engine]:
    engine = create_engine(pg)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS t"))
        conn.execute(text("CREATE TABLE t (id int PRIMARY KEY, v varchar(4))"))
        conn.execute(text("INSERT INTO t VALUES (1, 'a'), (2, 'b')"))
    yield engine
    engine.dispose()


def error_of(run: Callable[[], object]) -> DBAPIError:
    with pytest.raises(DBAPIError) as caught:
        run()
    return caught.value


def test_bad_data_is_not_transient(engine: Engine, pg: str) -> None:
    def too_long() -> None:
        with engine.begin() as conn:
            conn.execute(text("UPDATE t SET v = 'too long' WHERE id = 1"))

    assert not is_transient(error_of(too_long))
    catalog = Catalog(pg)
    with pytest.raises(DataError):  # through the catalog: itself, not CatalogUnavailableError
        catalog.append_events({"e" * 200: "{}"})
    catalog.close()


def test_timeouts_are_transient(engine: Engine) -> None:
    def statement_timeout() -> None:
        with engine.begin() as conn:
            conn.execute(text("SET LOCAL statement_timeout = 50"))
            conn.execute(text("SELECT pg_sleep(2)"))

    with engine.connect() as holder, holder.begin():
        holder.execute(text("SELECT * FROM t WHERE id = 1 FOR UPDATE"))

        def lock_timeout() -> None:
            with engine.begin() as conn:
                conn.execute(text("SET LOCAL lock_timeout = 50"))
                conn.execute(text("SELECT * FROM t WHERE id = 1 FOR UPDATE"))

        assert is_transient(error_of(lock_timeout))
    assert is_transient(error_of(statement_timeout))


def test_a_serialization_failure_and_a_deadlock_are_transient(engine: Engine) -> None:
    with engine.connect() as first, engine.connect() as second:
        first.execute(text("BEGIN ISOLATION LEVEL REPEATABLE READ"))
        first.execute(text("SELECT v FROM t WHERE id = 1"))
        second.execute(text("UPDATE t SET v = 'x' WHERE id = 1"))
        second.commit()
        failure = error_of(lambda: first.execute(text("UPDATE t SET v = 'y' WHERE id = 1")))
        assert failure.orig.sqlstate == "40001" and is_transient(failure)
        first.rollback()

    errors: list[DBAPIError] = []
    locked = threading.Barrier(2)

    def lock(ids: tuple[int, int]) -> None:
        try:
            with engine.begin() as conn:
                conn.execute(text("SELECT * FROM t WHERE id = :i FOR UPDATE"), {"i": ids[0]})
                locked.wait()
                conn.execute(text("SELECT * FROM t WHERE id = :i FOR UPDATE"), {"i": ids[1]})
        except DBAPIError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=lock, args=(ids,)) for ids in ((1, 2), (2, 1))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [e.orig.sqlstate for e in errors] == ["40P01"] and is_transient(errors[0])


def test_the_catalog_unreachable_is_catalog_unavailable(pg: str) -> None:
    catalog = Catalog(pg)
    name = make_url(pg).database
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
        )
        try:
            with pytest.raises(CatalogUnavailableError):
                catalog.log_head()
        finally:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
    assert catalog.log_head() == 0  # back
    catalog.close()


def test_sqlite_busy_is_transient_and_a_missing_table_is_not(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/x.db"
    engine = create_engine(url, connect_args={"timeout": 0, "isolation_level": None})
    with engine.connect() as holder, engine.connect() as other:
        holder.exec_driver_sql("BEGIN IMMEDIATE")
        busy = error_of(lambda: other.exec_driver_sql("BEGIN IMMEDIATE"))
        holder.exec_driver_sql("ROLLBACK")
    assert isinstance(busy.orig, sqlite3.OperationalError) and is_transient(busy)
    with engine.connect() as conn:
        missing = error_of(lambda: conn.exec_driver_sql("SELECT * FROM nowhere"))
    assert not is_transient(missing)
    engine.dispose()
