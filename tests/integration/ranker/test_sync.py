"""Trainer -> model store -> served copy: exact scores, damaged files, restarts, cadence.

Every test uses a real store folder on disk, written by a real trainer.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ranker import ModelStore, OnlineTrainer, RankerServer, StoreError
from ranker.publisher import UPDATES_KEPT
from tests.unit.ranker.helpers import WEIGHTS, request_for, small_settings, stream

# publish at the first sync and when told to only, however slowly a busy machine trains
MANUAL = {"sync": {"sparse_interval_s": 1e6, "dense_interval_s": 1e6}}


def assert_same_scores(trainer: OnlineTrainer, server: RankerServer, seed: int = 9) -> None:
    candidates = stream(seed).batch(50, rooms="all")
    request = request_for(candidates, trainer.history.read)
    expected = trainer.score(request, WEIGHTS)
    got = server.score(request, WEIGHTS)
    np.testing.assert_array_equal(got.probs, expected.probs)
    np.testing.assert_array_equal(got.score, expected.score)


@pytest.fixture
def store(tmp_path: Path) -> ModelStore:
    return ModelStore.open(tmp_path, "staged")


def test_a_server_that_applied_deltas_and_dense_scores_exactly_as_the_trainer(
    store: ModelStore,
) -> None:
    settings = small_settings(warmup={"id_on_steps": 4, "id_ramp_steps": 16})
    trainer, events = OnlineTrainer(settings, store), stream()
    trainer.train(events.batch(128))  # first sync: snapshot (+ delta, dense)
    server = RankerServer(store)
    assert_same_scores(trainer, server)
    for _ in range(3):
        trainer.train(events.batch(256))
        trainer.publish_delta()
    trainer.publish_dense()
    assert server.refresh() is True
    assert server.refresh() is False  # nothing new: cheap and no change
    assert_same_scores(trainer, server)
    versions = server.versions()
    assert (versions.sparse, versions.dense, versions.step) == (trainer.step,) * 3
    assert versions.stage == trainer.stats()["stage"] == "id_ramp"
    # through the retirement of the item table, and a code migration
    for _ in range(6):
        trainer.train(events.batch(256))
    assert trainer.migrate_codes("room", events.room_codes, (events.room_codes + 1) % 8) > 0
    trainer.publish_delta()
    trainer.publish_dense()
    server.refresh()
    assert "item" not in server.core.tables and server.versions().stage == "id_removed"
    assert_same_scores(trainer, server)


def test_snapshot_then_restore_gives_identical_scores(store: ModelStore) -> None:
    trainer, events = OnlineTrainer(small_settings(variant="hybrid"), store), stream()
    for _ in range(3):
        trainer.train(events.batch(200))
    trainer.save_snapshot()
    assert_same_scores(trainer, RankerServer(store))
    tensors, meta = trainer.state()
    restored = OnlineTrainer.from_state(tensors, meta)
    probe = events.batch(100)
    np.testing.assert_array_equal(restored.predict(probe), trainer.predict(probe))


def test_a_restarted_trainer_goes_on_where_its_snapshot_left_off(store: ModelStore) -> None:
    settings = small_settings(sparse={"min_count": 2, "ttl_s": 20.0, "expire_every_s": 2.0})
    trainer, events = OnlineTrainer(settings, store), stream()
    for _ in range(3):
        trainer.train(events.batch(200, rate_per_s=20.0))
    trainer.save_snapshot()
    later = [events.batch(200, rate_per_s=20.0) for _ in range(3)]
    for batch in later:
        trainer.train(batch)
    trainer.publish_delta()  # this run's files after the snapshot get abandoned
    follower = RankerServer(store)
    assert follower.versions().sparse == trainer.step

    resumed = OnlineTrainer.resume(store)
    for batch in later:
        resumed.train(batch)
    probe = events.batch(100)
    np.testing.assert_array_equal(resumed.predict(probe), trainer.predict(probe))
    for name, table in trainer.stats()["tables"].items():
        resumed_table = resumed.stats()["tables"][name]
        assert {k: v for k, v in table.items() if k != "bytes"} == {
            k: v for k, v in resumed_table.items() if k != "bytes"
        }

    resumed.publish_delta()
    resumed.publish_dense()
    runs = {e.run for kind in ("deltas", "dense") for e in store.entries(kind)}
    assert runs == {resumed.publisher.run} == {store.entries("snapshots")[-1].run}
    assert follower.refresh() and follower.run == resumed.publisher.run
    assert_same_scores(resumed, follower)


def test_a_damaged_delta_is_skipped_and_the_next_one_makes_the_server_exact(
    store: ModelStore, caplog: pytest.LogCaptureFixture
) -> None:
    trainer, events = OnlineTrainer(small_settings(**MANUAL), store), stream()
    trainer.train(events.batch(128))
    server = RankerServer(store)
    request = request_for(events.batch(30), trainer.history.read)
    before = server.score(request, WEIGHTS)
    trainer.train(events.batch(256))
    path = trainer.publish_delta()
    data = bytearray(path.read_bytes())
    data[-8] ^= 0xFF
    path.write_bytes(bytes(data))
    assert server.refresh() is False  # nothing of it applied, no error raised
    assert f"{path.name}: damaged model store file, contents do not match" in caplog.text
    after = server.score(request, WEIGHTS)
    np.testing.assert_array_equal(after.probs, before.probs)
    # the next delta holds every row changed since the snapshot: exact again, file left as is
    trainer.train(events.batch(256))
    trainer.publish_delta()
    trainer.publish_dense()
    assert server.refresh() is True
    assert path.exists() and server.versions().snapshot == store.entries("snapshots")[0].version
    assert_same_scores(trainer, server)


def test_a_gap_in_the_deltas_makes_the_server_load_the_newer_snapshot(store: ModelStore) -> None:
    trainer, events = OnlineTrainer(small_settings(), store), stream()
    trainer.train(events.batch(128))
    server = RankerServer(store)
    trainer.train(events.batch(128))
    lost = trainer.publish_delta()
    trainer.train(events.batch(128))
    trainer.save_snapshot()
    trainer.train(events.batch(128))
    trainer.publish_delta()
    trainer.publish_dense()
    lost.unlink()
    assert server.refresh()
    assert server.versions().snapshot == trainer.publisher.snapshot_version
    assert_same_scores(trainer, server)


def test_variants_share_one_store_root(tmp_path: Path) -> None:
    trainers = {
        variant: OnlineTrainer(small_settings(variant=variant), ModelStore.open(tmp_path, variant))
        for variant in ("staged", "lucid_only")
    }
    for trainer in trainers.values():
        trainer.train(stream().batch(128))
    for variant, trainer in trainers.items():
        server = RankerServer(tmp_path, variant)
        assert server.versions().variant == variant
        assert_same_scores(trainer, server)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lucid_only", "staged"]


def test_publishing_follows_the_sync_intervals(store: ModelStore) -> None:
    settings = small_settings(
        sync={"sparse_interval_s": 5.0, "dense_interval_s": 60.0},
        snapshot={"interval_s": 600.0, "keep": 2},
    )
    now = [0.0]  # seconds after a wall time later than every event
    trainer, events = OnlineTrainer(settings, store, clock=lambda: 2e9 + now[0]), stream()

    def published() -> tuple[int, int, int]:
        return tuple(len(store.entries(kind)) for kind in ("deltas", "dense", "snapshots"))

    trainer.train(events.batch(64))
    assert published() == (1, 1, 1)  # the first sync publishes everything
    now[0] = 3.0
    trainer.train(events.batch(64))
    assert published() == (1, 1, 1)
    now[0] = 5.0
    trainer.train(events.batch(64))
    assert published() == (2, 1, 1)
    now[0] = 61.0
    trainer.train(events.batch(64))
    assert published() == (3, 2, 1)
    for when in (601.0, 1202.0):
        now[0] = when
        trainer.train(events.batch(64))
    # two snapshots kept; the newest deltas and dense files only, up to the newest snapshot
    snapshots = [e.version for e in store.entries("snapshots")]
    assert len(snapshots) == 2
    for kind in ("deltas", "dense"):
        assert len(store.entries(kind)) == UPDATES_KEPT
        assert store.entries(kind)[-1].version == snapshots[-1]
    assert trainer.stats()["published"]["snapshot"] == snapshots[-1]


def test_a_server_needs_a_snapshot(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no snapshot yet"):
        RankerServer(tmp_path, "staged")
    with pytest.raises(StoreError, match="no snapshot to resume from"):
        OnlineTrainer.resume(ModelStore.open(tmp_path, "staged"))
