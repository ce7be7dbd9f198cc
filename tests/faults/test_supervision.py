"""``serve`` supervises its embedded worker: a SIGKILLed worker is reaped and restarted,
``/ready`` answers 503 while nothing consumes, the worker's beat dies with it, and the task
it had in flight completes seconds after the restart (not after the 15-minute timeout)."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from api.cli.supervisor import WorkerSupervisor
from tests.integration.api.conftest import (  # noqa: F401  (server: a module-wide fixture)
    AUTH,
    TOPICS,
    Server,
    server,
    wait_until,
)


def children(pid: int, *, zombies: bool = False) -> list[int]:
    """Processes whose parent is ``pid``, zombies (dead, not reaped) only if asked (/proc)."""
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines())
        except (OSError, ValueError):
            continue
        if int(fields["PPid"]) == pid and (zombies or not fields["State"].startswith("Z")):
            found.append(int(status.parent.name))
    return found


def gone(pid: int) -> bool:
    """No process has ``pid``: it exited and was reaped (a zombie still has its /proc entry)."""
    return not Path(f"/proc/{pid}").exists()


def batch(room: str) -> list[dict]:
    """64 slices (the most one request takes) with long transcripts: seconds to encode."""
    words = " ".join(TOPICS["cook"].split() * 12)
    return [{"slice_id": f"{room}-{i}", "ts": 1_000.0 + i, "asr": words} for i in range(64)]


def test_a_worker_that_keeps_dying_is_restarted_with_a_growing_delay() -> None:
    """A worker that exits at once is started again 1 s, then 2 s, then 4 s later: 3 starts
    in 5 s, where restarting at once would start it dozens of times."""
    supervisor = WorkerSupervisor([sys.executable, "-c", "raise SystemExit(3)"], dict(os.environ))
    supervisor.start()
    time.sleep(5)
    supervisor.stop()
    assert supervisor.starts == 3
    assert not children(os.getpid(), zombies=True)  # each was reaped, none is left running


def test_a_killed_embedded_worker_is_restarted_and_finishes_its_task(
    server: Server,  # noqa: F811  (the fixture imported above)
) -> None:
    serve = server.proc.pid
    [old] = children(serve)
    [beat] = children(old)  # the train queue takes the solo pool: the only child is the beat
    with server.client() as c:
        urls = [
            c.post(f"/v1/rooms/{room}/slices", headers=AUTH, json={"slices": batch(room)}).json()[
                "status_url"
            ]
            for room in (f"inflight{i}" for i in range(6))
        ]
        states = lambda: [c.get(url).json()["state"] for url in urls]  # noqa: E731
        wait_until(lambda: "STARTED" in states(), timeout=60, interval=0.02)
        os.kill(old, signal.SIGKILL)
        killed = time.monotonic()
        [in_flight] = [url for url, state in zip(urls, states(), strict=True) if state == "STARTED"]

        not_ready = wait_until(lambda: (r := c.get("/ready")).status_code == 503 and r, 5, 0.05)
        assert time.monotonic() - killed < 5
        assert not_ready.headers["content-type"].startswith("application/problem+json")
        assert "no worker consumes" in not_ready.json()["detail"]
        wait_until(lambda: gone(old), timeout=5, interval=0.05)  # reaped, not a zombie
        wait_until(lambda: gone(beat), timeout=5, interval=0.05)  # not orphaned

        [new] = wait_until(lambda: children(serve), timeout=10, interval=0.05)
        restarted = time.monotonic()
        wait_until(lambda: c.get("/ready").status_code == 200, timeout=60, interval=0.1)
        ready = time.monotonic()
        wait_until(lambda: c.get(in_flight).json()["state"] == "SUCCESS", timeout=60, interval=0.1)
        finished = time.monotonic()
        wait_until(lambda: set(states()) == {"SUCCESS"}, timeout=120, interval=0.2)
        stored = sum(c.get(f"/v1/rooms/inflight{i}").json()["n_slices"] for i in range(6))
    assert new != old and len(children(new)) == 1  # its own beat, and no other
    assert stored == 6 * 64
    print(
        f"restart {restarted - killed:.1f} s after the kill; ready {ready - killed:.1f} s, "
        f"the killed task done {finished - killed:.1f} s after it"
    )
    assert finished - restarted < 60
