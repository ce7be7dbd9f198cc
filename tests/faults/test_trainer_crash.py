"""Crash runs of the trainer with real processes: events posted through the API (``lucidrec
serve --no-worker``, which appends them to the event log) while the train worker is
SIGKILLed between tasks, mid-training and right after a snapshot, and restarted each time,
on the embedded default (SQLite broker and catalog) and on the scale-out profile (Redis
broker, PostgreSQL catalog), with two ranker variants.

At the end every accepted event has been trained exactly once relative to the final
model state: each variant's log position is the number of events accepted, and its
engagement statistics (every trained event counted once, with its room and code) equal
those of the accepted events counted once each. The served models catch up: the API's
``/v1/model`` and a server that followed the store through every restart reach the
trainer's final step.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import msgspec
import numpy as np
import pytest
from celery.result import AsyncResult
from prometheus_client.parser import text_string_to_metric_families

from ranker import EngagementCounter, ModelStore, OnlineTrainer, RankerServer, id_keys
from ranker.engagement import positive_channels
from tests.conftest import clustered_vectors
from tests.faults.profiles import profile_env
from tests.integration.services import free_port, redis_server
from tests.integration.workers.harness import Worker, client
from workers.catalog import Catalog, SliceRecord
from workers.codebooks import retrain_from_catalog
from workers.events import event_labels
from workers.messages import EventMessage

EXPERIMENTS = """experiments:
  - name: crash
    salt: crash-test
    variants:
      - {name: staged, weight: 1}
      - {name: lucid, weight: 1, overrides: {ranker: {variant: lucid_only}}}
"""
VARIANTS = ("lucid_only", "staged")
ROOMS = 40
NOW = time.time()


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with redis_server() as url:
        yield url


@pytest.fixture(params=["embedded", "scale-out"])
def env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    (tmp_path / "experiments.yaml").write_text(EXPERIMENTS)
    extra = {
        "LUCIDREC_EXPERIMENTS_FILE": str(tmp_path / "experiments.yaml"),
        "LUCIDREC_WORKERS__TRAIN_CHUNK_EVENTS": "256",  # many chunks, many publishes
    }
    with profile_env(request, tmp_path, (5, 6), **extra) as environment:
        yield environment


class Api:
    """``lucidrec serve --no-worker`` on a free port, posting events and keeping what it took."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        argv = [sys.executable, "-m", "api.cli", "serve", "--no-worker", "--port", str(port)]
        self.proc = subprocess.Popen(
            argv, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True
        )
        self.accepted: list[EventMessage] = []
        self.wakeups: list[str] = []
        wait_for(self._up, 120)

    def _up(self) -> bool:
        assert self.proc.poll() is None, "the API exited"
        try:
            return httpx.get(f"{self.url}/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def post(self, rooms: list[str], count: int) -> None:
        """Post ``count`` events (each a second apart in event time) in posts of 1000."""
        start = len(self.accepted)
        events = [event(start + i, rooms) for i in range(count)]
        for i in range(0, count, 1000):
            part = events[i : i + 1000]
            body = {"events": msgspec.to_builtins(part)}
            answer = httpx.post(f"{self.url}/v1/events", json=body, timeout=60).json()
            assert answer["accepted"] == len(part), answer
            self.accepted += part
            self.wakeups.append(answer["task_id"])

    def served_steps(self) -> dict[str, int]:
        variants = httpx.get(f"{self.url}/v1/model", timeout=10).json()["variants"]
        return {v: (s or {}).get("step", -1) for v, s in variants.items()}

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=30)


def event(i: int, rooms: list[str]) -> EventMessage:
    room = rooms[(i * 7919) % len(rooms)]
    clicked = (i * 31) % 5 < 2
    return EventMessage(
        event_id=f"ev{i}",
        ts=NOW - 3600 + i * 0.25,
        user_id=f"u{i % 37}",
        room_id=room,
        context={"hour": i % 24},
        labels={"click": 1.0, "watch_s": 60.0} if clicked else {},
    )


def trained_up_to(port: int) -> int:
    """The log position the trainer's first variant (lucid_only) has trained up to, from the
    train worker's metrics; -1 while they cannot be read."""
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=1).text
    except httpx.HTTPError:
        return -1
    first = {"variant": VARIANTS[0]}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "lucidrec_event_log_position" and sample.labels == first:
                return int(sample.value)
    return -1


def wait_for(predicate: Callable[[], object], timeout: float, interval: float = 0.05) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(interval)
    raise TimeoutError(f"condition not met within {timeout} s")


def test_a_trainer_killed_anywhere_loses_no_accepted_event_and_trains_none_twice(
    env: dict[str, str], tmp_path: Path
) -> None:
    started = time.monotonic()
    port = free_port()
    env = env | {"LUCIDREC_WORKERS__METRICS_PORT": str(port)}
    app, settings = client(env)
    catalog = Catalog(settings.catalog.url)
    x = clustered_vectors(ROOMS * 5, 16, 8, seed=13)
    catalog.store_encoded(
        [SliceRecord(f"s{i}", f"room{i // 5}", NOW - 7200 + i, x[i]) for i in range(ROOMS * 5)],
        None,
    )
    retrain_from_catalog(settings, progress=False)
    rooms = [r.room_id for r in catalog.rooms()]
    stores = {v: ModelStore.open(Path(settings.model_store) / "ranker", v) for v in VARIANTS}
    api = Api(env, tmp_path / "api.log")
    workers = [Worker(env, "train", tmp_path / "train0.log")]
    kills = []

    def restart() -> None:
        workers.append(Worker(env, "train", tmp_path / f"train{len(workers)}.log"))

    try:
        for _ in range(3):
            api.post(rooms, 300)
            AsyncResult(api.wakeups[-1], app=app).get(timeout=180, interval=0.05)
        servers = {v: RankerServer(stores[v].path) for v in VARIANTS}

        # between tasks: everything trained, the worker idle
        workers[-1].kill()
        kills.append("between tasks")
        api.post(rooms, 300)  # accepted while no trainer runs: the log keeps them
        restart()

        # mid-training: the first variant has trained part of the log, not all of it
        before = len(api.accepted)
        api.post(rooms, 4000)
        wait_for(lambda: before < trained_up_to(port) < len(api.accepted), 180, 0.005)
        workers[-1].kill()
        kills.append("mid-training")
        restart()

        # right after a snapshot
        snapshots = {v: set(stores[v].entries("snapshots")) for v in VARIANTS}
        api.post(rooms, 4000)
        wait_for(
            lambda: any(set(stores[v].entries("snapshots")) - snapshots[v] for v in VARIANTS),
            timeout=180,
            interval=0.005,
        )
        workers[-1].kill()
        kills.append("right after a snapshot")
        api.post(rooms, 300)
        restart()

        api.post(rooms, 300)
        final = app.send_task("lucidrec.train.events").get(timeout=300, interval=0.1)
        accepted = len(api.accepted)
        assert catalog.log_head() == accepted
        assert final["log_position"] == dict.fromkeys(VARIANTS, accepted)
        assert catalog.parked_counts() == {} and catalog.dead_letters() == []
        # publish the last chunk's update now (periodic maintenance would, once it is due)
        app.send_task("lucidrec.train.maintain", kwargs={"publish_now": True}).get(timeout=60)
        for variant, server in servers.items():  # followed the store through every restart
            wait_for(lambda s=server, v=variant: caught_up(s, final["steps"][v]), timeout=60)
        wait_for(lambda: api.served_steps() == final["steps"], timeout=60)
        workers[-1].stop()  # a warm stop: a snapshot of the final state

        counted = reference_counts(settings, catalog, api.accepted)
        keys = id_keys(rooms)
        lucid = np.array([r.room_lucid for r in catalog.rooms(room_ids=rooms)])
        for variant in VARIANTS:
            trainer = newest_snapshot(stores[variant])
            assert trainer.log_position == accepted and trainer.step == final["steps"][variant]
            for now in (NOW, NOW + 86400):
                np.testing.assert_allclose(
                    trainer.engagement.features(keys, lucid, now),
                    counted.features(keys, lucid, now),
                    rtol=1e-6,
                    atol=1e-9,
                )
                for got, want in zip(
                    trainer.engagement.room_counts(keys, now),
                    counted.room_counts(keys, now),
                    strict=True,
                ):
                    np.testing.assert_allclose(got, want, rtol=1e-9)
        print(
            f"\n{accepted} events accepted, none lost or trained twice; survived kills: "
            f"{', '.join(kills)}; {time.monotonic() - started:.0f} s"
        )
    finally:
        for worker in workers:
            if worker.proc.poll() is None:
                worker.stop()
        api.stop()
        catalog.close()


def caught_up(server: RankerServer, step: int) -> bool:
    server.refresh()
    return server.versions().step == step


def reference_counts(settings, catalog: Catalog, events: list[EventMessage]) -> EngagementCounter:
    """The accepted events, each counted once with its room's code, as training counts."""
    ranker = settings.ranker
    counter = EngagementCounter(ranker.engagement, ranker.lucid.levels, ranker.lucid.codes)
    codes = {r.room_id: r.room_lucid for r in catalog.rooms()}
    counter.add(
        np.array([e.ts for e in events]),
        id_keys([e.room_id for e in events]),
        np.array([codes[e.room_id] for e in events], dtype=np.int64),
        positive_channels(event_labels(events), len(events), ranker.tasks.quality_watch_s),
    )
    return counter


def newest_snapshot(store: ModelStore) -> OnlineTrainer:
    """The trainer state of the live run's newest snapshot, read without writing the store."""
    _, tensors, meta = next(store.intact(store.recovery_points(store.live_run()), "snapshots"))
    return OnlineTrainer.from_state(tensors, meta)
