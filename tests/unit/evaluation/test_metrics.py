"""Metrics against hand-computed values, the bootstrap's weights-as-resamples trick, and
the paired differences that reuse the same draws."""

from __future__ import annotations

import math

import numpy as np
import pytest

from api.evaluation.metrics import (
    WeightedAuc,
    auc,
    event_statistics,
    logloss,
    ndcg_at,
    per_user_auc,
    rank_of_positive,
    ranking_statistics,
    resample,
    user_weights,
)
from ranker import auc as ranker_auc


def test_auc_known_values_and_ties() -> None:
    assert auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.3, 0.4])) == 1.0
    assert auc(np.array([0, 0, 1, 1]), np.array([0.4, 0.3, 0.2, 0.1])) == 0.0
    # pairs (pos, neg): 0.8>0.5 won, 0.8<0.9 lost, 0.5=0.5 tied (half), 0.5<0.9 lost
    assert auc(np.array([1, 1, 0, 0]), np.array([0.8, 0.5, 0.5, 0.9])) == 1.5 / 4
    assert math.isnan(auc(np.array([1, 1]), np.array([0.1, 0.2])))


def test_auc_matches_the_rankers_on_random_data() -> None:
    rng = np.random.default_rng(0)
    y, s = rng.random(500) < 0.3, np.round(rng.random(500), 2)  # rounding makes ties
    assert auc(y, s) == pytest.approx(ranker_auc(y, s))


def test_weighted_auc_equals_auc_of_the_repeated_events() -> None:
    rng = np.random.default_rng(1)
    y, s = rng.random(200) < 0.5, np.round(rng.random(200), 1)
    w = rng.integers(0, 4, 200)
    assert WeightedAuc(y, s)(w.astype(float)) == pytest.approx(
        auc(np.repeat(y, w), np.repeat(s, w))
    )


def test_logloss_gauc_and_ranking_values() -> None:
    assert logloss(np.array([1, 0]), np.array([0.5, 0.5])) == pytest.approx([math.log(2)] * 2)
    users = np.array([0, 0, 0, 1, 1, 2])
    labels = np.array([1, 0, 0, 1, 0, 1])
    scores = np.array([0.9, 0.1, 0.95, 0.2, 0.3, 0.5])
    user_auc = per_user_auc(users, labels, scores)
    assert user_auc[0] == 0.5 and user_auc[1] == 0.0 and math.isnan(user_auc[2])
    metrics = event_statistics(users, labels, scores, n_users=4)  # user 3 has no events
    ones = np.ones(4)
    assert metrics["gauc"](ones) == pytest.approx((3 * 0.5 + 2 * 0.0) / 5)
    assert metrics["logloss"](ones) == pytest.approx(logloss(labels, scores).mean())
    counts = event_statistics(users, labels, scores * 10, n_users=4, probabilities=False)
    assert math.isnan(counts["logloss"](ones)) and counts["auc"](ones) == auc(labels, scores)
    rank = rank_of_positive(np.array([0.9, 0.5, 0.1]), np.array([[0.1, 0.2], [0.5, 0.9], [1, 1]]))
    assert rank.tolist() == [1.0, 2.5, 3.0]
    assert ndcg_at(np.array([1.0, 3.0, 11.0])) == pytest.approx([1.0, 0.5, 0.0])
    ranking = ranking_statistics(np.array([0, 1]), np.array([1.0, 11.0]), n_users=2)
    assert ranking["recall@10"](np.ones(2)) == 0.5 and ranking["ndcg@10"](np.ones(2)) == 0.5


def test_user_weights_are_seeded_resamples_of_all_users() -> None:
    weights = user_weights(50, 20, seed=1)
    assert weights.shape == (20, 50) and (weights.sum(axis=1) == 50).all()
    assert np.array_equal(weights, user_weights(50, 20, seed=1))
    assert not np.array_equal(weights, user_weights(50, 20, seed=2))
    assert user_weights(50, 0, seed=1).shape == (0, 50)


def test_bootstrap_interval_brackets_the_value_and_is_seeded() -> None:
    values = np.random.default_rng(2).random(300)

    def mean(w: np.ndarray) -> float:
        return float((w * values).sum() / w.sum())

    first = resample(mean, user_weights(300, 200, seed=5)).interval()
    assert first.low < first.value < first.high
    assert first.high - first.low < 0.15
    assert resample(mean, user_weights(300, 200, seed=5)).interval() == first


def _scores(seed: int, shift: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    users = rng.integers(0, 100, 3000)
    labels = (rng.random(3000) < 0.5).astype(float)
    return users, labels, np.clip(rng.random(3000) * 0.8 + shift * labels, 0.01, 0.99)


def test_paired_difference_of_identical_scores_is_exactly_zero() -> None:
    users, labels, scores = _scores(0)
    weights = user_weights(100, 200, seed=0)
    a = event_statistics(users, labels, scores, n_users=100)
    b = event_statistics(users, labels, scores.copy(), n_users=100)
    for metric in a:
        diff = (resample(a[metric], weights) - resample(b[metric], weights)).interval()
        assert (diff.value, diff.low, diff.high) == (0.0, 0.0, 0.0)


def test_paired_difference_detects_a_small_consistent_gain() -> None:
    users, labels, base = _scores(1)
    better = np.clip(base + 0.03 * labels, 0.01, 0.99)  # every positive a little higher
    weights = user_weights(100, 500, seed=0)
    a = resample(event_statistics(users, labels, better, 100)["auc"], weights)
    b = resample(event_statistics(users, labels, base, 100)["auc"], weights)
    diff = (a - b).interval()
    assert diff.value > 0 and diff.low > 0  # the paired interval excludes 0 ...
    assert a.interval().low < b.interval().high  # ... while the two own intervals overlap
    # the same draws serve both: the difference's draws are the draws' differences
    assert np.array_equal((a - b).draws, a.draws - b.draws)
