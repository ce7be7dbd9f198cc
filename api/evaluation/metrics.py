"""Replay metrics with bootstrap confidence intervals over users.

Every metric is written as a function of per-event (or per-user) weights, so a
bootstrap resample of users is just a weight vector (how often each user was
drawn): scores are sorted once per metric, not once per resample. AUC counts ties
as half; GAUC is the per-user AUC averaged with the user's event count as weight,
over users who have both classes; ranking metrics score one positive against its
sampled negatives (ties count half a rank).
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


def bootstrap(
    statistic: Callable[[np.ndarray], float],
    n_users: int,
    *,
    resamples: int,
    seed: int,
    level: float = 0.95,
) -> Interval:
    """``statistic(user_weights)`` at all-ones and its percentile interval over user resamples."""
    value = statistic(np.ones(n_users))
    rng = np.random.default_rng(seed)
    draws = np.array(
        [
            statistic(np.bincount(rng.integers(0, n_users, n_users), minlength=n_users))
            for _ in range(resamples)
        ],
        dtype=np.float64,
    )
    draws = draws[np.isfinite(draws)]
    if not draws.size:
        return Interval(value, float("nan"), float("nan"))
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(draws, [tail, 100 - tail])
    return Interval(value, float(low), float(high))


def event_metrics(
    users: np.ndarray, labels: np.ndarray, probs: np.ndarray, *, resamples: int, seed: int
) -> dict[str, Interval]:
    """AUC, GAUC and logloss of events (``users`` are indices 0..U-1), with intervals."""
    n_users = int(users.max()) + 1 if users.size else 0
    count = np.bincount(users, minlength=n_users).astype(np.float64)
    losses = np.bincount(users, logloss(labels, probs), minlength=n_users)
    user_auc = per_user_auc(users, labels, probs)
    valid = np.isfinite(user_auc)
    weighted_auc = WeightedAuc(labels, probs)

    def gauc(w: np.ndarray) -> float:
        weight = (w * count)[valid]
        return float((weight * user_auc[valid]).sum() / weight.sum()) if weight.sum() else np.nan

    return {
        "auc": bootstrap(lambda w: weighted_auc(w[users]), n_users, resamples=resamples, seed=seed),
        "gauc": bootstrap(gauc, n_users, resamples=resamples, seed=seed),
        "logloss": bootstrap(
            lambda w: (
                float((w * losses).sum() / (w * count).sum()) if (w * count).sum() else np.nan
            ),
            n_users,
            resamples=resamples,
            seed=seed,
        ),
    }


def ranking_metrics(
    users: np.ndarray, rank: np.ndarray, *, n_users: int, resamples: int, seed: int, k: int = 10
) -> dict[str, Interval]:
    """NDCG@k and Recall@k of probes (one positive each) averaged over probes, with intervals."""
    count = np.bincount(users, minlength=n_users).astype(np.float64)
    sums = {
        f"ndcg@{k}": np.bincount(users, ndcg_at(rank, k), minlength=n_users),
        f"recall@{k}": np.bincount(users, (rank <= k).astype(np.float64), minlength=n_users),
    }

    def mean_of(total: np.ndarray) -> Callable[[np.ndarray], float]:
        return lambda w: (
            float((w * total).sum() / (w * count).sum()) if (w * count).sum() else np.nan
        )

    return {
        name: bootstrap(mean_of(total), n_users, resamples=resamples, seed=seed)
        for name, total in sums.items()
    }
