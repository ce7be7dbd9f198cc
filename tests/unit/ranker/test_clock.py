"""The trainer's event clock stops at wall time + ``max_clock_skew_s``, whatever reaches it.

A clock pushed into the future makes the next expiry evict every row and history
(everything looks older than the ttl); it is saved in snapshots, so a restart keeps it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from ranker import ModelStore, OnlineTrainer
from tests.unit.ranker.helpers import small_settings, stream

START = 1.7e9  # the synthetic stream's first event
SETTINGS = small_settings(
    variant="hybrid", sparse={"ttl_s": 7200.0, "expire_every_s": 1.0}, max_clock_skew_s=300.0
)


def test_an_event_in_milliseconds_stops_the_clock_at_wall_time_plus_skew(
    caplog: pytest.LogCaptureFixture,
) -> None:
    wall = START + 3600.0  # an hour after the stream's first events, within the ttl
    trainer, events = OnlineTrainer(SETTINGS, clock=lambda: wall), stream()
    batch = events.batch(128)
    trainer.train(batch)
    users = trainer.stats()["history_users"]
    late = events.batch(64)
    trainer.train(dataclasses.replace(late, ts=late.ts * 1000.0))  # 55,000 years ahead
    assert trainer.event_time == wall + 300.0
    assert "past the wall clock; the event clock stops at" in caplog.text
    trainer.expire_idle()
    items = trainer.core.tables["item"]
    assert (items.rows(np.unique(batch.room)) > 0).all()
    assert items.stats()["evictions"] == 0
    assert trainer.stats()["history_users"] >= users


def test_an_event_within_the_skew_moves_the_clock() -> None:
    trainer, events = OnlineTrainer(SETTINGS, clock=lambda: START), stream()
    trainer.train(events.batch(128))
    ahead = events.batch(8)
    trainer.train(dataclasses.replace(ahead, ts=np.full(8, START + 299.0)))
    assert trainer.event_time == START + 299.0


def test_a_snapshot_saved_with_a_clock_in_the_future_resumes_with_it_set_back(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = ModelStore.open(tmp_path, "hybrid")
    wall = [START + 60.0]
    trainer = OnlineTrainer(SETTINGS, store, clock=lambda: wall[0])
    events = stream()
    batch = events.batch(128)
    trainer.train(batch)  # publishes a snapshot
    # what a trainer without the clamp saved after an event stamped in milliseconds
    trainer.event_time = trainer._last_expiry = 1.796e12
    trainer.train(events.batch(64))
    trainer.save_snapshot()

    resumed = OnlineTrainer.resume(store, clock=lambda: wall[0])
    assert resumed.event_time == wall[0] + 300.0
    assert "the snapshot's event time 1796000000000 is" in caplog.text
    items, rooms = resumed.core.tables["item"], np.unique(batch.room)
    resumed.expire_idle()
    assert (items.rows(rooms) > 0).all() and items.stats()["evictions"] == 0
    wall[0] += 7200.0 + 600.0  # quiet for longer than the ttl: expiry still runs
    resumed.expire_idle()
    assert (items.rows(rooms) == 0).all()
