"""Damaged model store files, on disk, written by a real trainer: a snapshot, a delta and a
dense file, each flipped, truncated, emptied or caught mid-write.

A resume takes the newest intact snapshot, a server skips the damaged file and is back
to exactly the trainer's scores with the next good one, and nothing raises.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from api.serving.servers import ServedModels
from ranker import ModelStore, OnlineTrainer, RankerServer, StoreError
from tests.conftest import clustered_vectors
from tests.integration.ranker.test_sync import MANUAL, assert_same_scores
from tests.integration.workers import test_train_queue as train_queue
from tests.integration.workers.harness import Worker, client, worker_env
from tests.unit.ranker.helpers import WEIGHTS, request_for, small_settings, stream
from workers.catalog import Catalog, SliceRecord
from workers.codebooks import retrain_from_catalog


def flip(offset: int) -> Callable[[Path], None]:
    def damage(path: Path) -> None:
        data = bytearray(path.read_bytes())
        data[offset] ^= 0x01
        path.write_bytes(bytes(data))

    return damage


def keep_first(fraction: float) -> Callable[[Path], None]:
    def damage(path: Path) -> None:
        data = path.read_bytes()
        path.write_bytes(data[: int(len(data) * fraction)])

    return damage


def mid_write(path: Path) -> None:
    """The file appears under its final name with two thirds of its bytes, as a copy that
    is still running leaves it (and the copier's temporary file lies beside it)."""
    data = path.read_bytes()
    path.unlink()
    (path.parent / f".{path.name}.copy.tmp").write_bytes(data[:100])
    path.write_bytes(data[: len(data) * 2 // 3])


DAMAGES = {
    "flipped header byte": flip(24),
    "flipped tensor byte": flip(-9),
    "truncated": keep_first(0.01),
    "zero-length": keep_first(0.0),
    "mid-write": mid_write,
}
SETTINGS = small_settings(**MANUAL)
damages = pytest.mark.parametrize("damage", DAMAGES.values(), ids=DAMAGES.keys())


@pytest.fixture
def store(tmp_path: Path) -> ModelStore:
    return ModelStore.open(tmp_path, "staged")


@damages
def test_a_resume_takes_the_newest_intact_snapshot(
    store: ModelStore, damage: Callable[[Path], None], caplog: pytest.LogCaptureFixture
) -> None:
    trainer, events = OnlineTrainer(SETTINGS, store), stream()
    trainer.train(events.batch(128))  # the first sync publishes a snapshot
    trainer.train(events.batch(128))
    trainer.save_snapshot()
    older = trainer.step
    trainer.train(events.batch(128))
    trainer.save_snapshot()
    newest = store.entries("snapshots")[-1].path
    damage(newest)

    resumed = OnlineTrainer.resume(store)
    assert resumed.step == older
    assert f"skipping {newest}" in caplog.text
    assert not newest.exists()  # abandoned with the later files of its run
    server = RankerServer(store)
    assert server.run == resumed.publisher.run
    resumed.train(events.batch(128))
    resumed.publish_delta()
    resumed.publish_dense()
    assert server.refresh()
    assert_same_scores(resumed, server)


@damages
def test_a_server_moves_past_a_damaged_delta(
    store: ModelStore, damage: Callable[[Path], None], caplog: pytest.LogCaptureFixture
) -> None:
    trainer, events = OnlineTrainer(SETTINGS, store), stream()
    trainer.train(events.batch(128))
    server = RankerServer(store)
    request = request_for(events.batch(30), trainer.history.read)
    before = server.score(request, WEIGHTS)
    trainer.train(events.batch(256))
    damaged = trainer.publish_delta()
    damage(damaged)
    assert server.refresh() is False
    assert f"skipping {damaged}" in caplog.text
    np.testing.assert_array_equal(server.score(request, WEIGHTS).probs, before.probs)

    trainer.train(events.batch(256))
    good = trainer.publish_delta()
    trainer.publish_dense()
    assert server.refresh()
    versions = server.versions()
    assert versions.sparse == trainer.core.version
    assert versions.published_at >= store.read(good)[1]["published_at"]  # lag back to fresh
    assert_same_scores(trainer, server)


@damages
def test_a_server_moves_past_a_damaged_dense_file(
    store: ModelStore, damage: Callable[[Path], None]
) -> None:
    trainer, events = OnlineTrainer(SETTINGS, store), stream()
    trainer.train(events.batch(128))
    server = RankerServer(store)
    snapshot = server.versions().dense
    trainer.train(events.batch(256))
    trainer.publish_delta()
    damage(trainer.publish_dense())
    assert server.refresh()  # the delta is applied, the dense file skipped
    assert server.versions().dense == snapshot
    trainer.train(events.batch(256))
    trainer.publish_delta()
    trainer.publish_dense()
    assert server.refresh()
    assert_same_scores(trainer, server)


def test_a_new_server_reaches_the_newest_rows_past_a_damaged_newest_snapshot(
    store: ModelStore,
) -> None:
    trainer, events = OnlineTrainer(SETTINGS, store), stream()
    trainer.train(events.batch(128))
    older = trainer.core.version
    trainer.train(events.batch(128))
    trainer.save_snapshot()
    for _ in range(4):  # more deltas than are kept after the snapshot's own
        trainer.train(events.batch(128))
        trainer.publish_delta()
    DAMAGES["flipped tensor byte"](store.entries("snapshots")[-1].path)

    server = RankerServer(store)  # the older snapshot, then the delta that closed it
    assert server.versions().snapshot == older
    trainer.train(events.batch(128))
    trainer.publish_delta()
    trainer.publish_dense()
    assert server.refresh()
    assert server.versions().sparse == trainer.core.version
    assert_same_scores(trainer, server)


def test_every_flipped_byte_of_a_delta_header_and_a_sample_of_its_tensors_is_refused(
    store: ModelStore,
) -> None:
    trainer = OnlineTrainer(SETTINGS, store)
    trainer.train(stream().batch(128))
    path = store.entries("deltas")[-1].path
    data = path.read_bytes()
    header = 8 + int.from_bytes(data[:8], "little")
    for offset in [*range(header), *range(header, len(data), 61)]:
        flip(offset)(path)
        with pytest.raises(StoreError):  # never another error, never a silent success
            store.read(path, "deltas")
        path.write_bytes(data)


def test_the_api_logs_a_variant_it_cannot_serve_and_serves_it_once_a_snapshot_is_intact(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    trainer, events = OnlineTrainer(SETTINGS, ModelStore.open(tmp_path, "staged")), stream()
    trainer.train(events.batch(128))
    (only,) = trainer.publisher.store.entries("snapshots")
    DAMAGES["zero-length"](only.path)
    models = ServedModels(tmp_path, 60.0)
    assert models.get("staged") is None
    assert "variant staged: no model to serve" in caplog.text
    assert f"skipping {only.path}" in caplog.text
    caplog.clear()
    assert models.get("staged") is None
    assert "skipping" not in caplog.text  # not read again while the folder is unchanged
    trainer.train(events.batch(128))
    trainer.save_snapshot()
    server = models.get("staged")
    assert server is not None
    assert_same_scores(trainer, server)


def test_a_killed_trainer_worker_resumes_from_its_older_intact_snapshot(tmp_path: Path) -> None:
    """A real ``lucidrec worker`` for the train queue, SIGKILLed; its newest snapshot gets a
    flipped byte; the restarted worker resumes from the one before, not from step 0."""
    env = worker_env(tmp_path, "sqlite", f"sqlite:///{tmp_path}/catalog.db")
    app, settings = client(env)
    catalog = Catalog(settings.catalog.url)
    x = clustered_vectors(200, 16, 8, seed=3)
    catalog.store_encoded(
        [SliceRecord(f"s{i}", f"room{i // 10}", float(i), x[i]) for i in range(200)], None
    )
    retrain_from_catalog(settings, progress=False)
    rooms = catalog.rooms()
    store = ModelStore.open(Path(settings.model_store) / "ranker", "staged")
    first = Worker(env, "train", tmp_path / "train1.log")
    second = None
    try:
        for start in (0, 64, 128):  # a snapshot at creation, then one after each later task
            batch = train_queue.events(start, 64, rooms, seed=start)
            task = app.send_task("lucidrec.train.events", args=[batch])
            task.get(timeout=180, interval=0.05)
            time.sleep(settings.ranker.snapshot.interval_s + 0.2)
        steps = train_queue.snapshot_steps(store)
        assert len(steps) == 3 and steps == sorted(steps) and steps[0] < steps[1] < steps[2]
        first.kill()
        newest = store.entries("snapshots")[-1].path
        flip(-9)(newest)

        second = Worker(env, "train", tmp_path / "train2.log")
        log = tmp_path / "train2.log"
        assert train_queue.wait_for_text(log, "resumed at step", timeout=120), log.read_text()
        text = log.read_text()
        assert f"resumed at step {steps[1]}" in text
        assert newest.name in text and "damaged model store file" in text
        assert "started fresh" not in text
    finally:
        if first.proc.poll() is None:
            first.stop()
        if second is not None:
            second.stop()
        catalog.close()
