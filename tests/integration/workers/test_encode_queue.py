"""The encode queue with real worker processes, over {SQLite, Redis} brokers x {SQLite,
PostgreSQL} catalogs: round trip, codes, bad slices, and a worker killed mid-task."""

from __future__ import annotations

import base64
import time
from pathlib import Path

import pytest

from tests.integration.workers.harness import Worker, client, slices, wait_all, worker_env
from workers.catalog import Catalog
from workers.codebooks import retrain_from_catalog


def test_slices_are_encoded_coded_and_bad_ones_fail_with_a_reason(
    broker: str, catalog_url: str, tmp_path: Path
) -> None:
    env = worker_env(tmp_path, broker, catalog_url, LUCIDREC_WORKERS__MAX_TEXT_CHARS="5000")
    app, settings = client(env)
    worker = Worker(env, "encode,maintenance", tmp_path / "worker.log")
    try:
        first = [
            app.send_task("lucidrec.encode.slices", args=[f"room{r}", slices(r, 0, 6)])
            for r in range(3)
        ]
        outcomes = wait_all(first, timeout=120)
        assert [o["stored"] for o in outcomes] == [6, 6, 6]
        assert all(o["codes_pending"] for o in outcomes)
        catalog = Catalog(settings.catalog.url)
        assert catalog.room("room0").room_lucid is None  # no codebook yet

        book = retrain_from_catalog(settings, progress=False)
        assert {r.room_lucid is not None for r in catalog.rooms()} == {True}

        bad = [
            {
                "slice_id": "corrupt",
                "ts": 1.0,
                "title": "x",
                "frames": [{"data": base64.b64encode(b"\x89PNG\r\n\x1a\n garbage").decode()}],
            },
            {"slice_id": "no-ts", "title": "x"},
            {"slice_id": "too-long", "ts": 1.0, "asr": "word " * 2000},
            {"slice_id": "escape", "ts": 1.0, "frames": [{"path": "../../etc/passwd"}]},
        ]
        second = app.send_task("lucidrec.encode.slices", args=["room0", slices(0, 6, 3) + bad])
        outcome = second.get(timeout=120, interval=0.1)
        assert outcome["stored"] == 3 and outcome["codebook_version"] == book.version
        reasons = {f["slice_id"]: f["reason"] for f in outcome["failed"]}
        assert set(reasons) == {"corrupt", "no-ts", "too-long", "escape"}
        assert "frame 0: corrupt" in reasons["corrupt"]
        assert "missing required field `ts`" in reasons["no-ts"]
        assert "text too long" in reasons["too-long"]
        assert "escapes the media root" in reasons["escape"]
        for slice_id in ("corrupt", "too-long", "escape"):
            stored = catalog.slice(slice_id)
            assert stored.status == "failed" and stored.failure_reason == reasons[slice_id]
        assert catalog.slice("r0-007").lucid is not None
        assert catalog.room("room0").n_slices == 9

        malformed = app.send_task("lucidrec.encode.slices", args=["room0", "not a list"])
        with pytest.raises(TypeError, match="JSON array of slice objects"):
            malformed.get(timeout=60, interval=0.1, propagate=True)
        assert malformed.state == "FAILURE" and (malformed.retries or 0) == 0
        catalog.close()
    finally:
        worker.stop()


def test_worker_killed_mid_task_loses_no_slice_and_stores_each_once(
    broker: str, catalog_url: str, tmp_path: Path
) -> None:
    env = worker_env(
        tmp_path,
        broker,
        catalog_url,
        LUCIDREC_WORKERS__REDELIVERY_TIMEOUT_S="6",
        LUCIDREC_WORKERS__TASK_SOFT_TIME_LIMIT_S="60",
        LUCIDREC_WORKERS__TASK_TIME_LIMIT_S="90",
    )
    app, settings = client(env)
    worker = Worker(env, "encode", tmp_path / "worker1.log")
    sent = [
        app.send_task("lucidrec.encode.slices", args=[f"room{r}", slices(r, 0, 24)])
        for r in range(4)
    ]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not any(r.state == "STARTED" for r in sent):
        time.sleep(0.02)
    assert any(r.state == "STARTED" for r in sent), "no task started within 120 s"
    worker.kill()
    replacement = Worker(env, "encode", tmp_path / "worker2.log")
    try:
        outcomes = wait_all(sent, timeout=240)
        catalog = Catalog(settings.catalog.url)
        assert catalog.count_slices() == 96
        rooms = catalog.rooms()
        assert sorted(r.n_slices for r in rooms) == [24, 24, 24, 24]  # aggregates counted once
        assert sum(o["stored"] for o in outcomes) + sum(len(o["skipped"]) for o in outcomes) >= 96
        catalog.close()
    finally:
        replacement.stop()
