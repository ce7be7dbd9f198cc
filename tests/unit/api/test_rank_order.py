"""A rank response says how its items are ordered: ``order: mmr`` when MMR diversified the
list (so it is not sorted by ``score``), ``order: score`` when it is by score.

The pipeline runs with a stand-in ranker that scores rooms a > b > c, where b is a near
copy of a and c is unlike both: MMR puts c before b.
"""

from __future__ import annotations

from types import SimpleNamespace

import msgspec
import numpy as np

from api.experiments import Assignment
from api.schemas import RankBody, RankResponse
from api.serving.pipeline import RankPipeline
from api.serving.rooms import RoomTable
from configs import Settings, load_settings
from ranker import History, Scores, id_keys

ROOMS = ["a", "b", "c"]
SCORES = np.array([1.0, 0.95, 0.9])


def table() -> RoomTable:
    embedding = np.array([[1.0, 0.0], [0.999, 0.0447], [0.0, 1.0]], dtype=np.float32)
    codes = np.array([[1, 1], [1, 2], [2, 1]], dtype=np.int64)
    return RoomTable(
        ids=ROOMS,
        keys=id_keys(ROOMS),
        index={room: i for i, room in enumerate(ROOMS)},
        live=np.ones(3, dtype=bool),
        coded=np.ones(3, dtype=bool),
        room_lucid=codes,
        slice_lucid=codes,
        started_at=np.zeros(3),
        embedding=embedding / np.linalg.norm(embedding, axis=1, keepdims=True),
        codebook_version="cb",
        lucid_text=["1-1", "1-2", "2-1"],
        slice_lucid_text=["1-1", "1-2", "2-1"],
    )


def pipeline() -> RankPipeline:
    rooms = table()
    server = SimpleNamespace(
        core=SimpleNamespace(features=SimpleNamespace(candidate_names=())),
        settings=SimpleNamespace(content_dim=2),
        versions=lambda: SimpleNamespace(run="run", step=1),
        # the candidates come in the order given: a, b, c
        score=lambda request, weights: Scores(
            tasks=("click",), probs=SCORES[:, None].copy(), score=SCORES.copy()
        ),
    )
    session = SimpleNamespace(
        history_of=lambda user: History(
            codes=np.zeros((1, 1, 2), dtype=np.int64),
            ts=np.zeros((1, 1)),
            mask=np.zeros((1, 1), dtype=bool),
        )
    )
    return RankPipeline(
        rooms=SimpleNamespace(table=lambda: rooms),
        models=SimpleNamespace(get=lambda variant: server),
        session=session,
        retriever=None,
        replays=SimpleNamespace(get=lambda request_id: None, put=lambda *args: None),
        new_room_age_s=900,
    )


def settings_with(mmr_lambda: float) -> Settings:
    settings = load_settings("test", env={})
    serving = msgspec.structs.replace(settings.serving, mmr_lambda=mmr_lambda, exploration=False)
    return msgspec.structs.replace(settings, serving=serving)


def rank(mmr_lambda: float) -> RankResponse:
    body = RankBody(user_id="u1", candidates=ROOMS, k=3)
    response = pipeline().rank(body, Assignment("default", settings_with(mmr_lambda)))
    # what the client reads: the response as sent
    return msgspec.json.decode(msgspec.json.encode(response), type=RankResponse)


def test_a_diversified_list_says_so_since_it_is_not_sorted_by_score() -> None:
    response = rank(0.5)
    assert [i.room_id for i in response.items] == ["a", "c", "b"]
    scores = [i.score for i in response.items]
    assert scores != sorted(scores, reverse=True)
    assert response.order == "mmr"


def test_a_list_by_score_says_so() -> None:
    response = rank(1.0)
    assert [i.room_id for i in response.items] == ["a", "b", "c"]
    assert response.order == "score"


def test_the_order_is_in_every_response_as_sent() -> None:
    sent = msgspec.json.decode(msgspec.json.encode(rank(0.8)))
    assert sent["order"] == "mmr"
