"""AUC as the probability that a positive outranks a negative."""

from __future__ import annotations

import math

import numpy as np

from ranker import auc


def test_auc_counts_pairs_and_ties() -> None:
    assert auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])) == 0.75
    assert auc(np.array([0, 1]), np.array([0.5, 0.5])) == 0.5
    assert math.isnan(auc(np.array([1, 1]), np.array([0.2, 0.3])))
