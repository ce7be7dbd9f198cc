"""The train queue with real worker processes: training, idempotency, publishing, and a
standby trainer taking over (from the newest snapshot) when the first is killed."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ranker import ModelStore, RankerServer
from tests.conftest import clustered_vectors
from tests.integration.workers.harness import Worker, client, worker_env
from workers.catalog import Catalog, SliceRecord
from workers.codebooks import retrain_from_catalog


def events(start: int, count: int, rooms: list, seed: int) -> list[dict]:
    """Users click rooms whose first code is even; everything else is a negative impression."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(start, start + count):
        room = rooms[int(rng.integers(len(rooms)))]
        click = room.room_lucid[0] % 2 == 0
        out.append(
            {
                "event_id": f"e{i}",
                "ts": 5000.0 + i,
                "user_id": f"u{i % 17}",
                "room_id": room.room_id,
                "context": {"hour": i % 24, "device": 1},
                "labels": {"click": 1.0, "watch_s": 60.0} if click else {},
            }
        )
    return out


def wait_for_text(path: Path, text: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text():
            return True
        time.sleep(0.1)
    return False


def snapshot_steps(store: ModelStore) -> list[int]:
    return [int(store.read(e, "snapshots")[1]["step"]) for e in store.entries("snapshots")]


def test_trainer_trains_publishes_and_a_standby_resumes_after_sigkill(
    broker: str, catalog_url: str, tmp_path: Path
) -> None:
    env = worker_env(tmp_path, broker, catalog_url)
    app, settings = client(env)
    catalog = Catalog(settings.catalog.url)
    x = clustered_vectors(400, 16, 12, seed=3)
    catalog.store_encoded(
        [SliceRecord(f"s{i}", f"room{i // 10}", float(i), x[i]) for i in range(400)], None
    )
    retrain_from_catalog(settings, progress=False)
    rooms = catalog.rooms()

    first = Worker(env, "train", tmp_path / "train1.log")
    standby = None
    try:
        result = app.send_task("lucidrec.train.events", args=[events(0, 300, rooms, 0)])
        outcome = result.get(timeout=180, interval=0.05)
        assert outcome["trained"] == 300 and outcome["duplicates"] == 0
        assert outcome["steps"]["staged"] == 300 // settings.ranker.training.batch_size + 1
        again = app.send_task("lucidrec.train.events", args=[events(0, 300, rooms, 0)])
        repeat = again.get(timeout=60, interval=0.05)
        assert repeat["duplicates"] == 300 and repeat["trained"] == 0
        assert repeat["steps"] == outcome["steps"]

        store = ModelStore.open(Path(settings.model_store) / "ranker", "staged")
        time.sleep(settings.ranker.snapshot.interval_s + 0.5)
        app.send_task("lucidrec.train.maintain").get(timeout=60, interval=0.05)
        assert store.entries("deltas") and store.entries("dense")
        assert max(snapshot_steps(store)) == outcome["steps"]["staged"]
        server = RankerServer(store.path)
        assert server.versions().step == outcome["steps"]["staged"]

        standby = Worker(env, "train", tmp_path / "train2.log")
        assert wait_for_text(tmp_path / "train2.log", "standing by", timeout=60)
        first.kill()
        later = app.send_task("lucidrec.train.events", args=[events(300, 100, rooms, 1)])
        resumed = later.get(timeout=180, interval=0.05)
        assert resumed["trained"] == 100
        # resumed from the snapshot (step 10), not from zero: 10 + ceil(100 / 32)
        assert resumed["steps"]["staged"] == outcome["steps"]["staged"] + 4
        assert "resumed at step" in (tmp_path / "train2.log").read_text()
    finally:
        if first.proc.poll() is None:
            first.stop()
        if standby is not None:
            standby.stop()
        catalog.close()
