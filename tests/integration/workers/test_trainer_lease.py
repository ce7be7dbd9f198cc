"""A train worker that stops cleanly gives its lease up, so the next trainer starts at once
instead of after the lease's lapse; the running trainer serves its metrics."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from tests.integration.services import free_port
from tests.integration.workers.harness import Worker, client, worker_env
from workers.catalog import Catalog

LEASE_S = 60.0


def holder(catalog: Catalog) -> str | None:
    """The lease's holder (``host:pid``), None when no one holds it."""
    value = catalog.get_state("lease:trainer")
    return None if value is None else value.rpartition("|")[0]


def wait_for(predicate, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.1)
    raise TimeoutError("condition not met in time")


def test_a_clean_stop_releases_the_lease_and_the_next_trainer_starts_at_once(
    tmp_path: Path,
) -> None:
    port = free_port()
    env = worker_env(
        tmp_path,
        "sqlite",
        f"sqlite:///{tmp_path}/catalog.db",
        LUCIDREC_WORKERS__TRAINER_LEASE_S=str(LEASE_S),
        LUCIDREC_WORKERS__METRICS_PORT=str(port),
    )
    _, settings = client(env)
    catalog = Catalog(settings.catalog.url)
    first = Worker(env, "train", tmp_path / "first.log")
    second = None
    try:
        assert wait_for(lambda: holder(catalog), 60).endswith(f":{first.proc.pid}")
        # its own wake-up at start made the trainers, which serve their metrics
        metrics = wait_for(
            lambda: (t := _metrics(port)) and "lucidrec_event_log_head" in t and t, 60
        )
        assert "lucidrec_event_log_head 0.0" in metrics
        first.stop()
        assert first.proc.returncode == 0 and holder(catalog) is None
        started = time.monotonic()
        second = Worker(env, "train", tmp_path / "second.log")
        wait_for(lambda: (holder(catalog) or "").endswith(f":{second.proc.pid}"), 60)
        assert time.monotonic() - started < LEASE_S / 2
        assert "standing by" not in (tmp_path / "second.log").read_text()
    finally:
        if first.proc.poll() is None:
            first.stop()
        if second is not None:
            second.stop()
        catalog.close()


def _metrics(port: int) -> str | None:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=1).text
    except httpx.HTTPError:
        return None
