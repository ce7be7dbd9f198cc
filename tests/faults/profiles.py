"""The two deployment profiles the crash runs use: the embedded default (SQLite broker and
catalog) and the scale-out one (Redis broker and result backend, PostgreSQL catalog)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis

from tests.integration.services import postgres_database
from tests.integration.workers.harness import worker_env


@contextmanager
def profile_env(
    request: pytest.FixtureRequest, tmp_path: Path, redis_dbs: tuple[int, int], **extra: str
) -> Iterator[dict[str, str]]:
    """A worker environment for ``request.param`` ("embedded" or "scale-out"); the scale-out
    one takes the module's ``redis_url`` fixture, emptied Redis databases ``redis_dbs``
    (broker, results) and a scratch PostgreSQL database."""
    if request.param == "embedded":
        yield worker_env(tmp_path, "sqlite", f"sqlite:///{tmp_path}/catalog.db", **extra)
        return
    url = request.getfixturevalue("redis_url")
    broker, results = (f"{url}/{db}" for db in redis_dbs)
    for db_url in (broker, results):
        redis.Redis.from_url(db_url).flushdb()
    with postgres_database() as catalog:
        yield worker_env(
            tmp_path,
            url,
            catalog,
            LUCIDREC_WORKERS__BROKER_URL=broker,
            LUCIDREC_WORKERS__RESULT_BACKEND=results,
            **extra,
        )
