"""Metrics against hand-computed values, and the bootstrap's weights-as-resamples trick."""

from __future__ import annotations

import math

import numpy as np
import pytest

from api.evaluation.metrics import (
    WeightedAuc,
    auc,
    bootstrap,
    event_metrics,
    logloss,
    ndcg_at,
    per_user_auc,
    rank_of_positive,
    ranking_metrics,
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
    metrics = event_metrics(users, labels, scores, resamples=0, seed=0)
    assert metrics["gauc"].value == pytest.approx((3 * 0.5 + 2 * 0.0) / 5)
    rank = rank_of_positive(np.array([0.9, 0.5, 0.1]), np.array([[0.1, 0.2], [0.5, 0.9], [1, 1]]))
    assert rank.tolist() == [1.0, 2.5, 3.0]
    assert ndcg_at(np.array([1.0, 3.0, 11.0])) == pytest.approx([1.0, 0.5, 0.0])
    ranking = ranking_metrics(
        np.array([0, 1]), np.array([1.0, 11.0]), n_users=2, resamples=0, seed=0
    )
    assert ranking["recall@10"].value == 0.5 and ranking["ndcg@10"].value == 0.5


def test_bootstrap_interval_brackets_the_value_and_is_seeded() -> None:
    values = np.random.default_rng(2).random(300)

    def mean(w: np.ndarray) -> float:
        return float((w * values).sum() / w.sum())

    first = bootstrap(mean, 300, resamples=200, seed=5)
    assert first.low < first.value < first.high
    assert first.high - first.low < 0.15
    assert bootstrap(mean, 300, resamples=200, seed=5) == first
