"""Sync lag (``lucidrec_sync_lag_seconds``): how long a served model has been behind the newest
file the trainer published, 0 once applied, however long the system then stays idle.

A real trainer writes a real store folder; :class:`ServedModels` follows it with a clock the
test moves, and each published file's time is set, so that the expected lag is exact.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from api.serving.servers import ServedModels
from ranker import ModelStore, OnlineTrainer
from ranker.publisher import UPDATES_KEPT
from tests.unit.ranker.helpers import small_settings, stream

# publish at the first sync and when told to only
MANUAL = {"sync": {"sparse_interval_s": 1e6, "dense_interval_s": 1e6}}
T0 = 1_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def published_at(path: Path | None, when: float) -> None:
    """Set a published file's modification time (the publisher's rename keeps the write's)."""
    assert path is not None
    os.utime(path, (when, when))


@pytest.fixture
def setup(tmp_path: Path) -> tuple[OnlineTrainer, ServedModels, Clock]:
    trainer = OnlineTrainer(small_settings(**MANUAL), ModelStore.open(tmp_path, "staged"))
    trainer.train(stream().batch(128))  # the first sync: snapshot, delta and dense
    for kind in ("snapshots", "deltas", "dense"):
        for entry in trainer.publisher.store.entries(kind):  # type: ignore[union-attr]
            published_at(entry.path, T0)
    clock = Clock()
    models = ServedModels(tmp_path, interval_s=1e9, clock=clock)  # refreshed by the test only
    assert models.get("staged") is not None
    return trainer, models, clock


def test_the_lag_is_zero_once_the_newest_files_are_applied_however_long_it_is_idle(
    setup: tuple[OnlineTrainer, ServedModels, Clock],
) -> None:
    _, models, clock = setup
    assert models.lags() == {"staged": 0.0}
    clock.now = T0 + 3600.0  # an idle hour: the newest update is an hour old, nothing waits
    assert models.lags() == {"staged": 0.0}


def test_the_lag_counts_from_the_oldest_file_not_applied_even_once_it_is_pruned(
    setup: tuple[OnlineTrainer, ServedModels, Clock],
) -> None:
    trainer, models, clock = setup
    events = stream(1)
    trainer.train(events.batch(64))
    first = trainer.publish_delta()
    published_at(first, T0 + 100.0)
    clock.now = T0 + 105.0
    assert models.lags() == {"staged": pytest.approx(5.0)}
    # the server stops applying while the trainer goes on; the publisher prunes that delta
    for i in range(UPDATES_KEPT + 1):
        trainer.train(events.batch(64))
        published_at(trainer.publish_delta(), T0 + 200.0 + i)
        clock.now = T0 + 210.0 + i
        models.lags()  # each scrape sees what waits
    assert first is not None and not first.exists()
    clock.now = T0 + 400.0
    assert models.lags() == {"staged": pytest.approx(300.0)}
    models.refresh_all()  # applied
    assert models.lags() == {"staged": 0.0}
    clock.now = T0 + 5000.0
    assert models.lags() == {"staged": 0.0}


def test_dense_weights_waiting_count_too(
    setup: tuple[OnlineTrainer, ServedModels, Clock],
) -> None:
    trainer, models, clock = setup
    trainer.train(stream(2).batch(64))
    published_at(trainer.publish_dense(), T0 + 50.0)
    clock.now = T0 + 60.0
    assert models.lags() == {"staged": pytest.approx(10.0)}
    models.refresh_all()
    assert models.lags() == {"staged": 0.0}


def test_a_damaged_newest_delta_keeps_the_lag_growing_until_an_intact_one_is_applied(
    setup: tuple[OnlineTrainer, ServedModels, Clock],
) -> None:
    trainer, models, clock = setup
    events = stream(3)
    trainer.train(events.batch(64))
    damaged = trainer.publish_delta()
    assert damaged is not None
    damaged.write_bytes(damaged.read_bytes()[:-7])  # truncated
    published_at(damaged, T0 + 10.0)
    models.refresh_all()  # skips it: nothing older to apply
    clock.now = T0 + 70.0
    assert models.lags() == {"staged": pytest.approx(60.0)}
    trainer.train(events.batch(64))
    published_at(trainer.publish_delta(), T0 + 80.0)
    models.refresh_all()
    assert models.lags() == {"staged": 0.0}


def test_a_restarted_trainer_s_run_waits_until_the_server_switches_to_it(
    setup: tuple[OnlineTrainer, ServedModels, Clock], tmp_path: Path
) -> None:
    trainer, models, clock = setup
    trainer.save_snapshot()
    restarted = OnlineTrainer.resume(ModelStore.open(tmp_path, "staged"))  # a new live run
    assert restarted.publisher is not None and restarted.publisher.run != trainer.publisher.run
    for kind in ("snapshots", "deltas", "dense"):
        for entry in restarted.publisher.store.entries(kind, restarted.publisher.run):
            published_at(entry.path, T0 + 20.0)
    clock.now = T0 + 30.0
    assert models.lags() == {"staged": pytest.approx(10.0)}
    models.refresh_all()
    assert models.get("staged").versions().run == restarted.publisher.run
    assert models.lags() == {"staged": 0.0}
