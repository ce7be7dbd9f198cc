"""A transient catalog outage mid-stream: the encode task retries with backoff and stores
its slices once the database is back; nothing is lost or stored twice."""

from __future__ import annotations

import time
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

from tests.integration.services import PG_ADMIN_URL, postgres_database
from tests.integration.workers.harness import Worker, client, slices, wait_all, worker_env
from workers.catalog import Catalog


def test_an_encode_task_retries_through_a_database_outage_and_then_stores_once(
    tmp_path: Path,
) -> None:
    with postgres_database() as url, psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        name = make_url(url).database
        env = worker_env(tmp_path, "sqlite", url, LUCIDREC_WORKERS__RETRY_BACKOFF_MAX_S="2")
        app, _ = client(env)
        worker = Worker(env, "encode", tmp_path / "worker.log")
        try:
            # the worker is connected and its encoder loaded before the outage
            wait_all(
                [app.send_task("lucidrec.encode.slices", args=["room0", slices(0, 0, 2)])], 120
            )
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )
            during = app.send_task("lucidrec.encode.slices", args=["room1", slices(1, 0, 3)])
            deadline = time.monotonic() + 60
            while during.state != "RETRY" and time.monotonic() < deadline:
                time.sleep(0.1)
            assert during.state == "RETRY", during.state
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            outcome = during.get(timeout=120, interval=0.1)
            assert outcome["stored"] == 3 and (during.retries or 0) >= 1
            catalog = Catalog(url)
            assert catalog.count_slices() == 5 and catalog.room("room1").n_slices == 3
            catalog.close()
        finally:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            worker.stop()
