"""Ranking metrics for progressive validation and tests."""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

from ranker.errors import RankerError


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC of ``scores`` for binary ``labels`` (Mann-Whitney U, ties count half).

    NaN when only one class is present.
    """
    labels = np.asarray(labels).astype(bool).reshape(-1)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if labels.shape != scores.shape:
        raise RankerError(f"labels {labels.shape} and scores {scores.shape} differ in shape")
    positives = int(labels.sum())
    negatives = labels.size - positives
    if positives == 0 or negatives == 0:
        return float("nan")
    ranks = rankdata(scores)
    u = ranks[labels].sum() - positives * (positives + 1) / 2
    return float(u / (positives * negatives))
