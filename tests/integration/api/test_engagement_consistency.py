"""Training/serving consistency of the engagement statistics: for the same events, the
statistics the API feeds the ranker for a room are the trainer's.

The events go through the API's session (in this process, and through two replicas
sharing a real Redis, plus one started afterwards) and, as the train queue takes
them, through :func:`workers.events.build_batch` into an :class:`ranker.OnlineTrainer`
(:func:`workers.training.train_variant`). Posts arrive out of time order and some
name rooms without codes, which only count at the room level (the trainer counts them
so when they are dropped from parking; they never get codes here).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import msgspec
import numpy as np
import pytest

from api.serving.rooms import RoomTable
from api.serving.session import Session, SessionState
from api.serving.shared import connect
from api.serving.shared_session import RedisSessionState
from configs import Settings, load_settings
from ranker import OnlineTrainer, id_keys
from tests.conftest import clustered_vectors
from workers.catalog import Catalog, SliceRecord
from workers.codebooks import retrain_from_catalog
from workers.events import build_batch
from workers.messages import EventMessage
from workers.training import train_variant

T0 = 1.75e9
ROOMS = 20


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    base = load_settings("test", env={"LUCIDREC_DATA_DIR": str(tmp_path)})
    url = f"sqlite:///{tmp_path}/catalog.db"
    return msgspec.structs.replace(base, catalog=msgspec.structs.replace(base.catalog, url=url))


@pytest.fixture
def catalog(settings: Settings) -> Iterator[Catalog]:
    """20 coded rooms, and one stored after the codebook, whose codes are pending."""
    catalog = Catalog(settings.catalog.url)
    x = clustered_vectors(ROOMS * 5 + 1, 16, 6, seed=11)
    slices = [SliceRecord(f"s{i}", f"room{i // 5}", T0 - 600 + i, x[i]) for i in range(ROOMS * 5)]
    catalog.store_encoded(slices, None)
    retrain_from_catalog(settings, progress=False)
    catalog.store_encoded([SliceRecord("late-0", "late", T0, x[-1])], None)
    yield catalog
    catalog.close()


def posts(seed: int) -> list[list[EventMessage]]:
    """30 posts of 1-40 events each within an hour, neither posts nor events in time order,
    on coded rooms, the pending room and a room the catalog does not know."""
    rng = np.random.default_rng(seed)
    rooms = [f"room{r}" for r in range(ROOMS)] + ["late", "ghost"]
    out = []
    for p in range(30):
        events = []
        for i in range(int(rng.integers(1, 41))):
            labels = {"click": float(rng.random() < 0.3), "watch_s": float(rng.choice([0, 10, 45]))}
            labels |= {"like": float(rng.random() < 0.1), "follow": float(rng.random() < 0.05)}
            events.append(
                EventMessage(
                    event_id=f"p{p}-{i}",
                    ts=T0 + float(rng.uniform(0, 3600)),
                    user_id=f"u{int(rng.integers(10))}",
                    room_id=rooms[int(rng.integers(len(rooms)))],
                    labels=labels,
                )
            )
        out.append(events)
    return out


@pytest.mark.parametrize("shared", [False, True], ids=["in-process", "redis-replicas"])
def test_the_api_feeds_the_ranker_the_statistics_the_trainer_trained_with(
    shared: bool, settings: Settings, catalog: Catalog, request: pytest.FixtureRequest
) -> None:
    ranker = settings.ranker
    table = RoomTable.build(catalog.rooms(), ranker.lucid.levels)
    assert not table.coded[table.index["late"]] and table.coded.sum() == ROOMS
    if shared:
        client = connect(f"{request.getfixturevalue('redis_url')}/3")
        client.flushdb()
        # replicas whose counts are never older than a read (counts_max_age_s 0)
        posting: list[Session] = [RedisSessionState(client, ranker, 0.0) for _ in range(2)]
    else:
        posting = [SessionState(ranker)]
    trainer = OnlineTrainer(ranker)
    for i, events in enumerate(posts(seed=3)):
        posting[i % len(posting)].record(events, table)  # the API, as /v1/events does
        built = build_batch(catalog, ranker, events)  # the train task
        train_variant(trainer, built.batch, built.no_codes)
    # every replica, and one started after the posts (it reads the stream from its start)
    reading = [*posting, RedisSessionState(client, ranker, 0.0)] if shared else posting

    coded = np.flatnonzero(table.coded)
    keys, lucid = table.keys[coded], table.room_lucid[coded]
    every_room = id_keys([*table.ids, "ghost", "never-seen"])
    for now in (T0 + 1800.0, T0 + 3700.0, T0 + 86400.0):  # inside the events' hour, after
        want = trainer.engagement.features(keys, lucid, now)
        assert np.abs(want).sum() > 0 and len(np.unique(want[:, 0])) > ROOMS // 2
        want_counts = trainer.engagement.room_counts(every_room, now)
        assert want_counts[1][-2] > 0  # the room the catalog does not know: counted
        for session in reading:
            np.testing.assert_allclose(session.stats(keys, lucid, now), want, rtol=1e-6, atol=1e-6)
            for got, expected in zip(session.counts(every_room, now), want_counts, strict=True):
                np.testing.assert_allclose(got, expected, rtol=1e-9)
