"""Scoring: the user side computed once matches per-example scoring; bad input is refused."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from ranker import Candidates, OnlineTrainer, RankerError
from ranker.types import EventBatch
from tests.unit.ranker.helpers import WEIGHTS, request_for, same_user, small_settings, stream


@pytest.mark.parametrize(
    "overrides",
    [
        {"variant": "staged"},
        {"variant": "staged", "backbone": {"layers": 1}},
        {"variant": "id_only"},
        {"variant": "lucid_only", "lucid": {"keys": "unigram"}},
        {"variant": "hybrid", "lucid": {"combine": "concat"}},
        {"variant": "stats_only"},
        {"variant": "dense_content", "backbone": {"layers": 1}},
        {"variant": "staged", "engagement": {"features": False}},
    ],
)
def test_a_request_scores_like_its_candidates_scored_one_by_one(overrides: dict) -> None:
    trainer = OnlineTrainer(small_settings(**overrides))
    events = stream()
    trainer.train(events.batch(640))
    # a request carries its candidates' statistics: the trainer's counts at its time
    candidates = trainer.with_stats(same_user(events.batch(40)))
    scores = trainer.score(request_for(candidates, trainer.history.read), WEIGHTS)
    one_by_one = trainer.predict(candidates)
    np.testing.assert_allclose(scores.probs, one_by_one, rtol=0, atol=2e-6)
    weights = np.array([WEIGHTS[t] for t in trainer.tasks], dtype=np.float32)
    np.testing.assert_allclose(scores.score, scores.probs @ weights, rtol=1e-6)
    assert scores.tasks == ("click", "quality_watch", "like", "follow")
    assert scores.probs.shape == (40, 4)


def test_a_request_without_candidates_scores_to_empty_arrays() -> None:
    trainer = OnlineTrainer(small_settings())
    trainer.train(stream().batch(64))
    request = request_for(stream().batch(3), trainer.history.read)
    none = Candidates(
        room=request.candidates.room[:0],
        room_lucid=request.candidates.room_lucid[:0],
        slice_lucid=request.candidates.slice_lucid[:0],
        room_age_s=request.candidates.room_age_s[:0],
    )
    scores = trainer.score(dataclasses.replace(request, candidates=none), WEIGHTS)
    assert scores.probs.shape == (0, 4) and scores.score.shape == (0,)


def test_unknown_task_weights_are_refused() -> None:
    trainer = OnlineTrainer(small_settings(tasks={"names": ["click"]}))
    candidates = stream().batch(5)
    with pytest.raises(RankerError, match="no head for"):
        trainer.score(request_for(candidates, trainer.history.read), {"follow": 1.0})


def _with(batch: EventBatch, **changes: np.ndarray) -> EventBatch:
    fields = {name: getattr(batch, name) for name in batch.__dataclass_fields__}
    return EventBatch(**(fields | changes))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda b: {"context": b.context[:, :2]}, "context must have 3 columns"),
        (lambda b: {"context": b.context + 30}, r"context 'hour' must lie in \[0, 24\)"),
        (lambda b: {"room_lucid": b.room_lucid + 8}, r"room_lucid must lie in \[0, 8\)"),
        (lambda b: {"slice_lucid": b.slice_lucid[:, :3]}, "slice_lucid must have 4 levels"),
    ],
)
def test_bad_batches_are_refused_with_the_field_named(change, message: str) -> None:
    trainer = OnlineTrainer(small_settings())
    batch = stream().batch(8)
    with pytest.raises(RankerError, match=message):
        trainer.train(_with(batch, **change(batch)))


def test_inconsistent_shapes_fail_when_the_batch_is_made() -> None:
    batch = stream().batch(8)
    with pytest.raises(RankerError, match="user must have 1 dimension"):
        _with(batch, user=batch.user[:5])
    with pytest.raises(RankerError, match="unknown label 'gift'"):
        _with(batch, labels={"gift": np.zeros(8)})
    with pytest.raises(RankerError, match="ts must be finite"):
        _with(batch, ts=np.full(8, np.nan))


def test_the_user_side_is_embedded_once_per_request_not_once_per_candidate(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    trainer = OnlineTrainer(small_settings(variant="staged"))
    events = stream()
    trainer.train(events.batch(320))
    model = trainer.core.model
    embed, user_batches = model.embed_user_side, []

    def recording(x):  # the real method, with the user-token batch size noted
        tokens = embed(x)
        user_batches.append(tokens.shape[0])
        return tokens

    monkeypatch.setattr(model, "embed_user_side", recording)
    scores = trainer.score(request_for(events.batch(40), trainer.history.read), WEIGHTS)
    assert scores.probs.shape[0] == 40
    assert user_batches == [1]
