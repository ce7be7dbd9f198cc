"""An experiment routes users to ``stats_only`` and ``dense_content``: the train task trains
both beside the default variant, and the API serves each with what it reads (engagement
statistics, content embeddings)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from api.experiments import Assigner
from api.schemas import RankBody
from api.serving.pipeline import RankPipeline
from api.serving.replays import MemoryReplays
from api.serving.retrieval import Retriever
from api.serving.rooms import RoomCache
from api.serving.servers import ServedModels
from api.serving.session import SessionState
from configs import WatchedExperiments
from tests.conftest import clustered_vectors
from tests.integration.workers.harness import client, worker_env
from workers.catalog import Catalog, SliceRecord
from workers.codebooks import retrain_from_catalog
from workers.messages import EventMessage
from workers.tasks import train as train_module

EXPERIMENTS = """experiments:
  - name: new_variants
    salt: variants-test
    variants:
      - {name: control, weight: 1}
      - {name: stats, weight: 1, overrides: {ranker: {variant: stats_only}}}
      - {name: content, weight: 1, overrides: {ranker: {variant: dense_content}}}
"""
VARIANTS = {"staged", "stats_only", "dense_content"}


def test_stats_only_and_dense_content_train_and_serve(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "experiments.yaml").write_text(EXPERIMENTS)
    env = worker_env(
        tmp_path,
        "sqlite",
        f"sqlite:///{tmp_path}/catalog.db",
        LUCIDREC_EXPERIMENTS_FILE=str(tmp_path / "experiments.yaml"),
    )
    app, settings = client(env)
    ranker = settings.ranker
    catalog = Catalog(settings.catalog.url)
    now = time.time()
    x = clustered_vectors(120, ranker.content_dim, 6, seed=4)  # embeddings dense_content reads
    catalog.store_encoded(
        [SliceRecord(f"s{i}", f"room{i // 10}", now - 300 + i, x[i]) for i in range(120)], None
    )
    retrain_from_catalog(settings, progress=False)
    rooms = [f"room{r}" for r in range(12)]
    rng = np.random.default_rng(0)
    events = [
        {
            "event_id": f"e{i}",
            "ts": now - 100 + i / 10,
            "user_id": f"u{i % 13}",
            "room_id": room,
            "labels": {"click": 1.0} if int(room[4:]) % 3 == 0 else {},
        }
        for i, room in enumerate(rng.choice(rooms, 200).tolist())
    ]
    monkeypatch.setattr(train_module, "_POOL", None)  # this test's trainers, in this process
    try:
        outcome = app.tasks["lucidrec.train.events"].apply(args=[events]).get()
        assert outcome["trained"] == 200
        batch_size = ranker.training.batch_size
        assert outcome["steps"] == {v: -(-200 // batch_size) for v in VARIANTS}

        watched = WatchedExperiments(settings.experiments_file, settings)
        assign = Assigner(watched)
        users = {}
        for i in range(100):
            users.setdefault(assign(f"user{i}").settings.ranker.variant, f"user{i}")
        assert set(users) == VARIANTS
        session = SessionState(ranker)
        pipeline = RankPipeline(
            RoomCache(catalog, ranker.lucid.levels, 60.0),
            ServedModels(Path(settings.model_store) / "ranker", 60.0),
            session,
            Retriever(10, 10),
            MemoryReplays(60, 1 << 20),
            new_room_age_s=0,
        )

        def scores(user: str) -> dict[str, float]:
            body = RankBody(user_id=user, candidates=rooms, k=len(rooms))
            out = pipeline.rank(body, assign(user))
            assert out.ranker_variant == assign(user).settings.ranker.variant
            return {item.room_id: item.score for item in out.items}

        before = {variant: scores(user) for variant, user in users.items()}
        # every variant ranked every room: dense_content was given their content embeddings
        assert all(len(s) == len(rooms) for s in before.values())
        # other users' clicks on room1: only its statistics move, so only they change the
        # scores the stats_only model gives (its one candidate token besides the room's age)
        clicks = [
            EventMessage(
                event_id=f"c{i}", ts=time.time(), user_id=f"v{i}", room_id="room1",
                labels={"click": 1.0},
            )
            for i in range(30)
        ]  # fmt: skip
        session.record(clicks, pipeline.rooms.table())
        after = scores(users["stats_only"])
        assert after["room1"] != pytest.approx(before["stats_only"]["room1"], abs=1e-6)
    finally:
        catalog.close()
