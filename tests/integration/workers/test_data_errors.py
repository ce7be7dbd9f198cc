"""Data PostgreSQL refuses fails at once, never retried, its reason stored: a task whose
room id is too long for the catalog fails with PostgreSQL's reason; a slice or an event
whose id is too long fails alone, and the rest of its task is stored or trained."""

from __future__ import annotations

import time
from pathlib import Path

from celery.result import AsyncResult

from tests.integration.services import postgres_database
from tests.integration.workers.harness import Worker, client, slices, worker_env
from workers.catalog import Catalog

LONG = "x" * 200


def finished_without_retry(result: AsyncResult, timeout: float) -> str:
    """The task's final state, failing if it was ever seen waiting for a retry."""
    deadline = time.monotonic() + timeout
    while result.state not in ("SUCCESS", "FAILURE"):
        assert result.state != "RETRY", "a data error was retried"
        assert time.monotonic() < deadline, f"still {result.state} after {timeout} s"
        time.sleep(0.05)
    assert not result.retries
    return result.state


def test_data_errors_fail_at_once_with_their_reason(tmp_path: Path) -> None:
    with postgres_database() as url:
        env = worker_env(tmp_path, "sqlite", url)
        app, _ = client(env)
        worker = Worker(env, "encode,train", tmp_path / "worker.log")
        catalog = Catalog(url)
        try:
            bad_room = app.send_task("lucidrec.encode.slices", args=[LONG, slices(0, 0, 2)])
            assert finished_without_retry(bad_room, timeout=120) == "FAILURE"
            assert "value too long for type character varying(128)" in str(bad_room.result)

            batch = [*slices(1, 0, 2), dict(slices(1, 2, 1)[0], slice_id=LONG)]
            one_bad = app.send_task("lucidrec.encode.slices", args=["room1", batch])
            assert finished_without_retry(one_bad, timeout=60) == "SUCCESS"
            outcome = one_bad.result
            assert outcome["stored"] == 2 and len(outcome["failed"]) == 1
            assert "length <= 128" in outcome["failed"][0]["reason"]
            assert catalog.count_slices() == 2

            events = [
                {"event_id": event_id, "ts": 1.0, "user_id": "u", "room_id": "room1"}
                for event_id in ("e1", LONG, "e2")
            ]
            trained = app.send_task("lucidrec.train.events", args=[events])
            assert finished_without_retry(trained, timeout=120) == "SUCCESS"
            assert trained.result["appended"] == 2
            assert [i["index"] for i in trained.result["invalid"]] == [1]
            assert "length <= 128" in trained.result["invalid"][0]["reason"]
            assert catalog.log_head() == 2
        finally:
            catalog.close()
            worker.stop()
