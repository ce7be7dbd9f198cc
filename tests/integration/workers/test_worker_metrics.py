"""An encode worker with a prefork pool serves its children's counters on its metrics port.

A real ``lucidrec worker --queues encode --concurrency 2``: its tasks run in two forked
children, which write their counters to multiprocess files; the main process serves the
sum (task outcomes, slices encoded) and its pool's CPU and memory.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.services import free_port
from tests.integration.workers.harness import client, slices, wait_all, worker_env

ENCODE = "lucidrec.encode.slices"


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float] | None:
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
    except httpx.HTTPError:
        return None
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def get(found: dict, name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


def wait_for(predicate, timeout: float, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(interval)
    raise TimeoutError("condition not met in time")


def test_a_prefork_encode_worker_serves_the_sum_of_its_children_s_counters(
    tmp_path: Path,
) -> None:
    port = free_port()
    env = worker_env(
        tmp_path,
        "sqlite",
        f"sqlite:///{tmp_path}/catalog.db",
        LUCIDREC_WORKERS__METRICS_PORT=str(port),
    )
    app, _ = client(env)
    log = tmp_path / "worker.log"
    argv = [sys.executable, "-m", "api.cli", "worker", "--queues", "encode", "--concurrency", "2"]
    with log.open("ab") as out:
        proc = subprocess.Popen(
            argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        # the children write their (zero) counters as they start
        started = wait_for(
            lambda: (
                (m := scrape(port)) is not None and get(m, "lucidrec_pool_processes") == 2 and m
            ),
            timeout=120,
        )
        assert get(started, "lucidrec_slices_encoded_total") == 0
        sent = [app.send_task(ENCODE, args=[f"room{r}", slices(r, 0, 3)]) for r in range(4)]
        bad = app.send_task(ENCODE, args=["room0", "not a list"])
        assert [o["stored"] for o in wait_all(sent, timeout=240)] == [3, 3, 3, 3]
        wait_for(lambda: bad.state == "FAILURE", timeout=120)
        found = wait_for(
            lambda: (
                (m := scrape(port))
                and get(m, "lucidrec_tasks_succeeded_total", task=ENCODE) == 4
                and m
            ),
            timeout=30,
        )
        assert get(found, "lucidrec_task_failures_total", task=ENCODE, exception="TypeError") == 1
        assert get(found, "lucidrec_slices_encoded_total") == 12
        # one frame each: encoded by a vision tower, or ignored by a text-only encoder
        used = get(found, "lucidrec_frames_used_total")
        assert used + get(found, "lucidrec_frames_ignored_total") == 12
        assert get(found, "lucidrec_pool_cpu_seconds_total") > 0
        assert get(found, "lucidrec_pool_resident_memory_bytes") > 0
        assert get(found, "process_cpu_seconds_total") > 0  # the main process
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
    assert proc.returncode == 0, log.read_text()[-3000:]
