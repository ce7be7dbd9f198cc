"""Replay metrics with bootstrap confidence intervals over users.

Every metric is written as a function of per-event (or per-user) weights, so a
bootstrap resample of users is just a weight vector (how often each user was
drawn): scores are sorted once per metric, not once per resample. AUC counts ties
as half; GAUC is the per-user AUC averaged with the user's event count as weight,
over users who have both classes; ranking metrics score one positive against its
sampled negatives (ties count half a rank).

The same weight matrix serves every metric, subset and variant of a run: each
statistic is evaluated once per resample (:func:`resample`), and both a variant's
interval and its paired difference from another variant (the difference of the
two draws, resample by resample) come from those same draws.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

EPS = 1e-7


@dataclass(frozen=True)
class Interval:
    """A point estimate and its percentile bootstrap interval."""

    value: float
    low: float
    high: float

    def as_dict(self) -> dict[str, float]:
        return {"value": self.value, "low": self.low, "high": self.high}


class WeightedAuc:
    """AUC of fixed scores under any event weights (ties half), in O(n) per weighting."""

    def __init__(self, labels: np.ndarray, scores: np.ndarray) -> None:
        self.labels = np.asarray(labels, dtype=bool)
        _, self.rank = np.unique(np.asarray(scores, dtype=np.float64), return_inverse=True)
        self.groups = int(self.rank.max()) + 1 if self.rank.size else 0

    def __call__(self, weights: np.ndarray) -> float:
        pos = np.bincount(self.rank, weights * self.labels, minlength=self.groups)
        neg = np.bincount(self.rank, weights * ~self.labels, minlength=self.groups)
        total = pos.sum() * neg.sum()
        if total <= 0:
            return float("nan")
        below = np.cumsum(neg) - neg
        return float((pos * (below + 0.5 * neg)).sum() / total)


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC (ties half); NaN when only one class is present."""
    return WeightedAuc(labels, scores)(np.ones(len(labels)))


def logloss(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Per-event binary cross-entropy, probabilities clipped to [EPS, 1 - EPS]."""
    p = np.clip(np.asarray(probs, dtype=np.float64), EPS, 1 - EPS)
    y = np.asarray(labels, dtype=np.float64)
    return -(y * np.log(p) + (1 - y) * np.log(1 - p))


def per_user_auc(users: np.ndarray, labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """AUC of each user index in ``range(users.max() + 1)`` (NaN without both classes)."""
    n_users = int(users.max()) + 1 if users.size else 0
    out = np.full(n_users, np.nan)
    order = np.argsort(users, kind="stable")
    bounds = np.searchsorted(users[order], np.arange(n_users + 1))
    for u in range(n_users):
        rows = order[bounds[u] : bounds[u + 1]]
        y = labels[rows].astype(bool)
        if 0 < y.sum() < y.size:
            out[u] = auc(y, scores[rows])
    return out


def rank_of_positive(positive: np.ndarray, negatives: np.ndarray) -> np.ndarray:
    """1-based rank of each row's positive score among its negatives (ties count half)."""
    above = (negatives > positive[:, None]).sum(axis=1)
    ties = (negatives == positive[:, None]).sum(axis=1)
    return 1.0 + above + 0.5 * ties


def ndcg_at(rank: np.ndarray, k: int = 10) -> np.ndarray:
    """NDCG@k of one relevant item at ``rank``: 1/log2(rank + 1) within the top k."""
    return np.where(rank <= k, 1.0 / np.log2(rank + 1.0), 0.0)


Statistic = Callable[[np.ndarray], float]  # a metric as a function of user weights


def user_weights(n_users: int, resamples: int, seed: int) -> np.ndarray:
    """(resamples, n_users): how often each user is drawn in each bootstrap resample.

    One matrix per run: every metric, subset and variant is resampled with the
    same draws, which is what makes a difference between two variants paired.
    """
    draws = np.random.default_rng(seed).integers(0, n_users, (resamples, n_users))
    draws += np.arange(resamples)[:, None] * n_users  # resample r counts in row r
    counts = np.bincount(draws.reshape(-1), minlength=resamples * n_users)
    return counts.reshape(resamples, n_users).astype(np.float64)


@dataclass(frozen=True)
class Resampled:
    """A statistic's value at all-ones user weights and on every bootstrap resample.

    Two statistics resampled on the same weights are paired: their difference is
    the difference of their draws, resample by resample.
    """

    value: float
    draws: np.ndarray  # (resamples,)

    def __sub__(self, other: Resampled) -> Resampled:
        return Resampled(self.value - other.value, self.draws - other.draws)

    def interval(self, level: float = 0.95) -> Interval:
        """The value and the percentile interval of the finite draws."""
        draws = self.draws[np.isfinite(self.draws)]
        if not np.isfinite(self.value) or not draws.size:
            return Interval(self.value, float("nan"), float("nan"))
        tail = (1 - level) / 2 * 100
        low, high = np.percentile(draws, [tail, 100 - tail])
        return Interval(self.value, float(low), float(high))


def resample(statistic: Statistic, weights: np.ndarray) -> Resampled:
    """``statistic`` at all-ones and at each row of ``weights`` (:func:`user_weights`)."""
    value = statistic(np.ones(weights.shape[1]))
    return Resampled(value, np.array([statistic(w) for w in weights], dtype=np.float64))


def _weighted_mean(total: np.ndarray, count: np.ndarray) -> Statistic:
    """The mean of per-user ``total`` over per-user ``count`` under user weights."""

    def mean(w: np.ndarray) -> float:
        denominator = (w * count).sum()
        return float((w * total).sum() / denominator) if denominator else float("nan")

    return mean


def _undefined(_: np.ndarray) -> float:
    return float("nan")


def event_statistics(
    users: np.ndarray,
    labels: np.ndarray,
    scores: np.ndarray,
    n_users: int,
    *,
    probabilities: bool = True,
) -> dict[str, Statistic]:
    """AUC, GAUC and logloss of events (``users`` are indices below ``n_users``) as
    functions of user weights; logloss is undefined (NaN) unless the scores are
    ``probabilities``."""
    count = np.bincount(users, minlength=n_users).astype(np.float64)
    user_auc = per_user_auc(users, labels, scores)
    user_auc = np.concatenate([user_auc, np.full(n_users - len(user_auc), np.nan)])
    valid = np.isfinite(user_auc)
    weighted_auc = WeightedAuc(labels, scores)
    losses = (
        np.bincount(users, logloss(labels, scores), minlength=n_users) if probabilities else None
    )
    return {
        "auc": lambda w: weighted_auc(w[users]),
        "gauc": _weighted_mean(np.where(valid, count * user_auc, 0.0), np.where(valid, count, 0.0)),
        "logloss": _undefined if losses is None else _weighted_mean(losses, count),
    }


def ranking_statistics(
    users: np.ndarray, rank: np.ndarray, n_users: int, k: int = 10
) -> dict[str, Statistic]:
    """NDCG@k and Recall@k of probes (one positive each), averaged over probes, as
    functions of user weights."""
    count = np.bincount(users, minlength=n_users).astype(np.float64)
    return {
        f"ndcg@{k}": _weighted_mean(np.bincount(users, ndcg_at(rank, k), minlength=n_users), count),
        f"recall@{k}": _weighted_mean(
            np.bincount(users, (rank <= k).astype(np.float64), minlength=n_users), count
        ),
    }
