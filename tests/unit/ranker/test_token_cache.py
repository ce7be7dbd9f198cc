"""The token cache of a served copy: reused across requests, and dropped when the model changes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ranker import OnlineTrainer, RankRequest
from ranker.codec import core_from_tensors, core_tensors
from ranker.core import RankerCore
from ranker.features import UserSide
from tests.unit.ranker.helpers import WEIGHTS, request_for, small_settings, stream


def served_copy(trainer: OnlineTrainer) -> RankerCore:
    """What a RankerServer holds: the trainer's tables and weights, not trainable."""
    core = trainer.core
    return core_from_tensors(core.settings, core_tensors(core), core.step, trainable=False)


def request(trainer: OnlineTrainer, seed: int, n: int = 30) -> RankRequest:
    """A request of one user for ``n`` rooms of the stream, some of them repeated."""
    events = stream(seed).batch(n)
    return request_for(events, trainer.history.read)


@pytest.mark.parametrize(
    "overrides",
    [{"variant": "staged"}, {"variant": "hybrid", "backbone": {"layers": 1}}],
)
def test_served_scores_stay_those_of_the_trainer_across_requests(overrides: dict) -> None:
    trainer = OnlineTrainer(small_settings(**overrides))
    trainer.train(stream().batch(640))
    served = served_copy(trainer)
    for seed in (1, 2, 1, 3):  # later requests reuse the entries of earlier ones
        req = request(trainer, seed)
        got, expected = served.score(req, WEIGHTS), trainer.score(req, WEIGHTS)
        np.testing.assert_allclose(got.probs, expected.probs, rtol=0, atol=2e-6)
    # one entry per distinct key: age buckets, room and slice codes, room ids, and the
    # readout unless one block merges it with the user side (ranker.readout)
    cands = [request(trainer, seed).candidates for seed in (1, 2, 3)]
    features = served.features
    distinct = (len(served.model.blocks) > 1) + sum(
        len(np.unique(np.concatenate(keys)))
        for keys in (
            [features.age_buckets(c.room_age_s).numpy() for c in cands],
            [served.token_cache._code_key(c.room_lucid)[:, -1] for c in cands],
            [served.token_cache._code_key(c.slice_lucid)[:, -1] for c in cands],
            [c.room for c in cands],
        )
    )
    assert len(served.token_cache) == distinct


@pytest.mark.parametrize("layers", [1, 2])
def test_cached_scoring_is_the_models_plain_forward(layers: int) -> None:
    """The cache (and, with one block, the merged readout) against ``RankerModel.forward``."""
    trainer = OnlineTrainer(small_settings(variant="staged", backbone={"layers": layers}))
    trainer.train(stream().batch(640))
    served = served_copy(trainer)
    for seed in (1, 2, 1):
        req = request(trainer, seed)
        user_side = UserSide(
            user=np.array([req.user]),
            history=req.history,
            context=np.asarray(req.context).reshape(1, -1),
            now=np.array([req.ts]),
        )
        with torch.inference_mode():
            plain = torch.sigmoid(served.logits(user_side, req.candidates)[0]).numpy()
        np.testing.assert_allclose(served.score(req, WEIGHTS).probs, plain, rtol=0, atol=2e-6)


def test_an_applied_delta_or_dense_update_drops_the_cached_tokens() -> None:
    trainer = OnlineTrainer(small_settings())
    events = stream()
    trainer.train(events.batch(640))
    served = served_copy(trainer)
    req = request(trainer, 1)
    before = served.score(req, WEIGHTS)
    version = trainer.core.version
    trainer.train(events.batch(640))
    served.apply_sparse_delta(trainer.core.sparse_delta(version), trainer.core.step)
    assert len(served.token_cache) == 0
    served.load_dense(trainer.core.model.state_dict(), trainer.core.step)
    after, expected = served.score(req, WEIGHTS), trainer.score(req, WEIGHTS)
    assert np.abs(after.probs - before.probs).max() > 1e-4  # the update reached the scores
    np.testing.assert_allclose(after.probs, expected.probs, rtol=0, atol=2e-6)


def test_a_full_cache_starts_over_and_scores_the_same() -> None:
    trainer = OnlineTrainer(small_settings())
    trainer.train(stream().batch(640))
    served = served_copy(trainer)
    served.token_cache.max_entries = 150  # fewer than two requests' worth of keys
    for seed in (1, 2, 3):
        req = request(trainer, seed, n=30)
        got = served.score(req, WEIGHTS)
        np.testing.assert_allclose(got.probs, trainer.score(req, WEIGHTS).probs, atol=2e-6)
        assert len(served.token_cache) <= 150
