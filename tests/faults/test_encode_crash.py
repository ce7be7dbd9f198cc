"""Crash runs of the encode worker with real processes: SIGKILLed before, during and after
encoding a batch, restarted, and nothing lost or stored twice, on the embedded default
(SQLite broker and catalog) and on the scale-out profile (Redis broker, PostgreSQL catalog).

The redelivery timeout stays at its default, 15 minutes: each batch comes back within
seconds only because the restarted worker reclaims the messages of its dead predecessor.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.profiles import profile_env
from tests.integration.services import redis_server
from tests.integration.workers.harness import client, slices
from workers.catalog import Catalog

PLAN = {"room0": "before", "room1": "during", "room2": "after"}
BATCH = 12
RECOVERY_LIMIT_S = 120.0  # a reclaim takes a worker start (seconds); the timeout is 900 s


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with redis_server() as url:
        yield url


@pytest.fixture(params=["embedded", "scale-out"])
def env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    """A worker environment with the crash plan, for the embedded or the scale-out profile."""
    crash = {
        "CRASH_PLAN": ",".join(f"{room}:{point}" for room, point in PLAN.items()),
        "CRASH_MARKS": str(tmp_path),
        "LUCIDREC_WORKERS__REDELIVERY_TIMEOUT_S": "900",
    }
    with profile_env(request, tmp_path, (7, 8), **crash) as environment:
        yield environment


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen:
    """The crashing worker (tests.faults.crashing_worker) in its own process group."""
    argv = ["worker", "--queues", "encode", "--concurrency", "1", "--loglevel", "INFO"]
    return subprocess.Popen(
        [sys.executable, "-m", "tests.faults.crashing_worker", *argv],
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def test_an_encode_worker_killed_before_during_and_after_a_batch_loses_and_doubles_nothing(
    env: dict[str, str], tmp_path: Path
) -> None:
    app, settings = client(env)
    sent = {
        room: app.send_task("lucidrec.encode.slices", args=[room, slices(r, 0, BATCH)])
        for r, room in enumerate(PLAN)
    }
    logs = iter(tmp_path / f"worker{i}.log" for i in range(1, 10))
    worker = start_worker(env, next(logs))
    died: dict[str, float] = {}  # room -> when its worker died
    recovered: dict[str, float] = {}  # room -> seconds from that death to the task's success
    deadline = time.monotonic() + 420
    try:
        while len(recovered) < len(PLAN) and time.monotonic() < deadline:
            for room, at in died.items():
                if room not in recovered and sent[room].ready():
                    recovered[room] = time.monotonic() - at
            if worker.poll() is not None:
                crashed = {p.name.split("-")[1] for p in tmp_path.glob("crashed-*")} - set(died)
                assert len(crashed) == 1, f"worker exited ({worker.returncode}) unplanned"
                died[crashed.pop()] = time.monotonic()
                worker = start_worker(env, next(logs))
            time.sleep(0.1)
    finally:
        if worker.poll() is None:
            worker.terminate()
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait()
    seconds = {room: round(s, 1) for room, s in recovered.items()}
    print(f"each batch back {seconds} s after its worker was killed")
    assert set(died) == set(PLAN), f"crashes: {sorted(died)}; see {tmp_path}/worker*.log"
    assert set(recovered) == set(PLAN), f"not redelivered in time: {set(PLAN) - set(recovered)}"
    assert all(s < RECOVERY_LIMIT_S for s in recovered.values()), recovered

    outcomes = {room: result.get(timeout=10) for room, result in sent.items()}
    # killed before or during: nothing of the batch was stored, the redelivery stored it all
    assert outcomes["room0"]["stored"] == outcomes["room1"]["stored"] == BATCH
    # killed after the store, before the ack: the redelivery found every slice stored
    assert outcomes["room2"]["stored"] == 0 and len(outcomes["room2"]["skipped"]) == BATCH
    catalog = Catalog(settings.catalog.url)
    try:
        assert catalog.count_slices() == catalog.count_slices("encoded") == 3 * BATCH
        assert sum(len(ids) for ids, _ in catalog.iter_embeddings()) == 3 * BATCH
        assert {r.room_id: r.n_slices for r in catalog.rooms()} == dict.fromkeys(PLAN, BATCH)
    finally:
        catalog.close()
