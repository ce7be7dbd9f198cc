"""The train task reads the event log: poison events fail alone as dead letters, events on
rooms whose codes are pending are parked (bounded) and trained once the codes exist, a
trainer resumed from a snapshot replays the log from the snapshot's position (parked
events included) and trains each event once, and maintenance bounds the log.

The task runs in this process (``apply``), on a real catalog (SQLite and PostgreSQL),
with the trainers of a fresh pool; events enter the log as the API appends them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest
from celery import Celery

from api.serving.rooms import RoomTable
from api.serving.session import SessionState
from configs import Settings
from quantizer import Codebook
from ranker import id_keys
from tests.conftest import clustered_vectors
from tests.integration.workers.harness import client, worker_env
from workers.catalog import Catalog, SliceRecord
from workers.codebooks import code_pending, retrain_from_catalog
from workers.messages import EventMessage
from workers.tasks import train as train_module

T0 = 1.75e9
ROOMS = [f"room{r}" for r in range(8)]


@dataclass
class Bed:
    """A seeded catalog (8 coded rooms, room ``late`` stored after the codebook: codes
    pending), a Celery app to run the train tasks in this process, and the API's counts."""

    app: Celery
    settings: Settings
    catalog: Catalog
    api: SessionState  # the engagement counts the API keeps of what it accepted

    def post(self, events: list[EventMessage]) -> dict[str, Any]:
        """What ``POST /v1/events`` does (append, count in the session), then the wake-up."""
        appended = set(
            self.catalog.append_events(
                {e.event_id: msgspec.json.encode(e).decode() for e in events}
            )
        )
        table = RoomTable.build(self.catalog.rooms(), self.settings.ranker.lucid.levels)
        self.api.record([e for e in events if e.event_id in appended], table)
        return self.wake()

    def wake(self) -> dict[str, Any]:
        return self.app.tasks["lucidrec.train.events"].apply().get()

    def code_late_room(self) -> None:
        """What maintenance does for slices stored while their codes were pending."""
        active = self.catalog.active_codebook()
        assert active is not None
        assert code_pending(self.catalog, Codebook.load(Path(active.path))) == 3

    def trainer_counts(self, rooms: list[str], now: float) -> tuple[np.ndarray, np.ndarray]:
        trainer = train_module._POOL.trainer("staged")  # type: ignore[union-attr]
        return trainer.engagement.room_counts(id_keys(rooms), now)


@pytest.fixture
def bed(
    catalog_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> Iterator[Bed]:
    extra = getattr(request, "param", {})
    env = worker_env(tmp_path, "sqlite", catalog_url, **extra)
    app, settings = client(env)
    catalog = Catalog(settings.catalog.url)
    x = clustered_vectors(83, 16, 6, seed=5)
    catalog.store_encoded(
        [SliceRecord(f"s{i}", f"room{i // 10}", T0 - 900 + i, x[i]) for i in range(80)], None
    )
    retrain_from_catalog(settings, progress=False)
    catalog.store_encoded(
        [SliceRecord(f"late-{i}", "late", T0 - 10 + i, x[80 + i]) for i in range(3)], None
    )
    monkeypatch.setattr(train_module, "_POOL", None)  # this test's trainers, in this process
    try:
        yield Bed(app, settings, catalog, SessionState(settings.ranker))
    finally:
        catalog.close()


def events(prefix: str, rooms: list[str], start: float, seed: int) -> list[EventMessage]:
    """One event per room, a second apart from ``start``; every third a click."""
    rng = np.random.default_rng(seed)
    return [
        EventMessage(
            event_id=f"{prefix}{i}",
            ts=start + i,
            user_id=f"u{int(rng.integers(7))}",
            room_id=room,
            context={"hour": i % 24},
            labels={"click": 1.0} if i % 3 == 0 else {},
        )
        for i, room in enumerate(rooms)
    ]


def mixed(n: int, seed: int) -> list[str]:
    return [ROOMS[int(r)] for r in np.random.default_rng(seed).integers(len(ROOMS), size=n)]


def assert_counts_agree(bed: Bed, rooms: list[str], now: float) -> None:
    """Room by room, the trainer has counted every event once, as the API has."""
    api = bed.api.counts(id_keys(rooms), now)
    for got, want in zip(bed.trainer_counts(rooms, now), api, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-9)


def test_a_poison_event_fails_alone_as_a_dead_letter_and_the_rest_trains(bed: Bed) -> None:
    good = [msgspec.to_builtins(e) for e in events("ok", mixed(60, 0), T0, 0)]
    overflow = dict(good[0], event_id="too-big", context={"hour": 2**64 - 1})
    nan_time = dict(good[1], event_id="no-time", ts=float("nan"))
    outcome = bed.app.tasks["lucidrec.train.events"].apply(args=[[overflow, *good, nan_time]])
    result = outcome.get()
    assert result["appended"] == 62 and result["trained"] == 60
    assert result["dead_letters"] == ["no-time", "too-big"]
    letters = {d.event_id: d for d in bed.catalog.dead_letters()}
    assert set(letters) == {"no-time", "too-big"}
    assert letters["too-big"].reason.startswith("OverflowError")
    assert "got `null`" in letters["no-time"].reason  # NaN is no JSON: logged as null
    assert msgspec.json.decode(letters["too-big"].payload)["context"] == {"hour": 2**64 - 1}
    again = bed.wake()
    assert again["trained"] == 0 and again["log_position"] == {"staged": 62}
    assert len(bed.catalog.dead_letters()) == 2
    metrics = train_module._POOL.metrics.registry  # type: ignore[union-attr]
    assert metrics.get_sample_value("lucidrec_dead_letters_total", {"variant": "staged"}) == 2


def parked_gauge() -> float | None:
    registry = train_module._POOL.metrics.registry  # type: ignore[union-attr]
    return registry.get_sample_value("lucidrec_parked_events", {"variant": "staged"})


def test_events_on_a_room_without_codes_wait_for_them_and_then_train(bed: Bed) -> None:
    first = events("a", ["late"] * 5 + mixed(20, 1), T0, 1)
    outcome = bed.post(first)
    assert outcome["trained"] == 20 and outcome["parked"] == {"staged": 5}
    assert parked_gauge() == 5
    again = bed.wake()  # nothing new in the log: the codes are still pending anyway
    assert again["trained"] == 0 and again["parked"] == {}
    bed.code_late_room()
    later = bed.post(events("b", mixed(3, 2), T0 + 100, 2))
    assert later["released"] == [f"a{i}" for i in range(5)]
    assert later["trained"] == 8 and later["parked"] == {"staged": 0}
    assert parked_gauge() == 0
    assert bed.catalog.parked_counts() == {}
    # each room's counts (the all-rooms row is their sum) are the API's: parked events
    # are counted once, when they train
    for now in (T0 + 50, T0 + 86400):
        assert_counts_agree(bed, [*ROOMS, "late"], now)


@pytest.mark.parametrize(
    "bed",
    [{"LUCIDREC_WORKERS__PARKED_MAX_EVENTS": "3", "LUCIDREC_WORKERS__PARKED_MAX_AGE_S": "1"}],
    indirect=True,
)
@pytest.mark.parametrize("catalog_url", ["sqlite"], indirect=True)
def test_parking_is_bounded_in_count_and_age_and_counts_what_it_drops(bed: Bed) -> None:
    outcome = bed.post(events("g", ["ghost"] * 5 + mixed(4, 3), T0, 3))
    assert outcome["parked"] == {"staged": 3} and outcome["dropped"] == 2
    assert [e.event_id for e in bed.catalog.parked("staged")] == ["g2", "g3", "g4"]
    shown = bed.trainer_counts(["ghost"], T0 + 1)[1][0]
    assert 1.99 < shown <= 2.0  # the two dropped, a second apart (half-lives of hours)
    time.sleep(1.2)
    later = bed.post(events("h", mixed(2, 4), T0 + 100, 4))
    assert later["parked"] == {"staged": 0} and later["dropped"] == 3
    metrics = train_module._POOL.metrics.registry  # type: ignore[union-attr]
    dropped = {
        bound: metrics.get_sample_value(
            "lucidrec_parked_dropped_total", {"variant": "staged", "bound": bound}
        )
        for bound in ("count", "age")
    }
    assert dropped == {"count": 2.0, "age": 3.0}
    # dropped events count for their room, as the API counted them
    assert_counts_agree(bed, [*ROOMS, "ghost"], T0 + 200)


@pytest.mark.parametrize("bed", [{"LUCIDREC_RANKER__SNAPSHOT__INTERVAL_S": "3600"}], indirect=True)
def test_a_resumed_trainer_replays_from_its_snapshot_and_trains_each_event_once(
    bed: Bed, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = bed.post(events("a", ["late"] * 4 + mixed(20, 5), T0, 5))
    assert first["parked"] == {"staged": 4}
    train_module.snapshot_on_shutdown()  # a snapshot at log position 24, 4 events parked
    bed.code_late_room()
    second = bed.post(events("b", mixed(10, 6), T0 + 100, 6))
    assert second["released"] == [f"a{i}" for i in range(4)] and second["trained"] == 14
    # the trainer dies: its state after the snapshot (the 14 events) is lost
    monkeypatch.setattr(train_module, "_POOL", None)
    resumed = bed.wake()
    assert resumed["released"] == [f"a{i}" for i in range(4)] and resumed["trained"] == 14
    assert resumed["log_position"] == {"staged": 34} == {"staged": bed.catalog.log_head()}
    assert bed.wake()["trained"] == 0
    for now in (T0 + 200, T0 + 86400):
        assert_counts_agree(bed, [*ROOMS, "late"], now)


@pytest.mark.parametrize("catalog_url", ["sqlite"], indirect=True)
def test_maintenance_prunes_the_log_below_every_recovery_point(bed: Bed) -> None:
    for k in range(3):
        bed.post(events(f"p{k}-", mixed(40, k), T0 + 100 * k, k))
        train_module.snapshot_on_shutdown()  # snapshots at positions 40, 80, 120
    # snapshot.keep is 3: the fresh trainer's snapshot at position 0 is gone from disk
    maintained = bed.app.tasks["lucidrec.train.maintain"].apply().get()
    assert maintained["pruned"] == 40
    assert [e.position for e in bed.catalog.read_log(0, 120, 1)] == [41]
    assert bed.app.tasks["lucidrec.train.maintain"].apply().get()["pruned"] == 0
