"""Which run servers follow and a trainer resumes: the live one, whatever the versions say,
and cumulative deltas, of which any one makes a server exact.

A trainer that starts afresh beside a dead run's files (every snapshot it could
resume from was unreadable) counts versions from 0 again, below the dead run's.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from configs.ranker import RankerSettings
from ranker import ModelStore, OnlineTrainer, RankerServer
from tests.integration.ranker.test_sync import MANUAL, assert_same_scores
from tests.unit.ranker.helpers import small_settings, stream

SETTINGS = small_settings(**MANUAL)


@pytest.fixture
def store(tmp_path: Path) -> ModelStore:
    return ModelStore.open(tmp_path, "staged")


def dead_run(store: ModelStore, settings: RankerSettings = SETTINGS) -> OnlineTrainer:
    """A run that trained to version 8 and snapshotted, then died."""
    trainer, events = OnlineTrainer(settings, store), stream(seed=5)
    for _ in range(4):
        trainer.train(events.batch(128))
    trainer.save_snapshot()
    return trainer


def test_servers_follow_a_fresh_run_beside_a_dead_one_and_its_snapshots_are_kept(
    store: ModelStore,
) -> None:
    settings = small_settings(**MANUAL, snapshot={"keep": 2})
    dead = dead_run(store, settings)
    follower = RankerServer(store)
    assert follower.run == dead.publisher.run
    fresh, events = OnlineTrainer(settings, store), stream()
    fresh.save_snapshot()  # what the train worker does when it cannot resume
    fresh.train(events.batch(128))
    fresh.publish_delta()
    fresh.publish_dense()

    server = RankerServer(store)
    assert server.run == fresh.publisher.run
    assert_same_scores(fresh, server)
    assert follower.refresh() and follower.run == fresh.publisher.run
    assert_same_scores(fresh, follower)
    for _ in range(2):
        fresh.train(events.batch(128))
        fresh.save_snapshot()
    assert {e.run for e in store.entries("snapshots")} == {fresh.publisher.run}
    assert max(e.version for e in store.entries("snapshots")) < dead.core.version
    assert_same_scores(fresh, RankerServer(store))


def test_a_resume_takes_the_live_runs_snapshot_over_a_dead_runs_higher_version(
    store: ModelStore,
) -> None:
    dead = dead_run(store)
    fresh, events = OnlineTrainer(SETTINGS, store), stream()
    fresh.save_snapshot()
    fresh.train(events.batch(128))
    fresh.save_snapshot()
    resumed = OnlineTrainer.resume(store)
    assert resumed.step == fresh.step < dead.step
    server = RankerServer(store)
    assert server.run == resumed.publisher.run
    assert_same_scores(resumed, server)


def test_the_newest_delta_alone_makes_a_server_exact_and_holds_no_more_than_the_tables(
    store: ModelStore,
) -> None:
    trainer, events = OnlineTrainer(SETTINGS, store), stream()
    trainer.train(events.batch(128))
    server = RankerServer(store)
    written = []
    for _ in range(4):
        trainer.train(events.batch(128))
        written.append(trainer.publish_delta())
    trainer.publish_dense()
    for path in written[:-1]:
        path.unlink(missing_ok=True)  # the server sees only the newest
    assert server.refresh()
    assert_same_scores(trainer, server)
    tensors, meta = store.read(written[-1], "deltas")
    assert meta["base"] == server.versions().snapshot
    for name, table in trainer.core.tables.items():
        assert 0 < tensors[f"{name}.keys"].numel() <= len(table)
