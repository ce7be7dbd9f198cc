"""Re-ranking: MMR diversity over room embeddings, and exploration slots for new rooms.

MMR (maximal marginal relevance) picks, one at a time, the candidate that
maximises ``lambda * relevance - (1 - lambda) * max cosine similarity to the
rooms already picked``; relevance is the ranker's score scaled to [0, 1].
``lambda = 1`` is the plain score order.

Exploration gives ``slots`` places in the list to rooms younger than a
threshold, chosen by Thompson sampling: each new room draws from
Beta(1 + clicks, 1 + impressions - clicks) and the highest draws win, so rooms
nobody has seen yet get shown and rooms that convert get shown more.
"""

from __future__ import annotations

import numpy as np


def mmr(scores: np.ndarray, embeddings: np.ndarray, k: int, lam: float) -> np.ndarray:
    """Indices of ``k`` candidates in MMR order.

    Two exact shortcuts keep this cheap for thousands of candidates. A value never
    rises above ``lam * relevance`` (similarities only add a penalty) and never
    falls below it by more than ``(1 - lam) * s_max`` (``s_max``: the largest
    self-similarity). Some candidate among the ``k`` best by that lower bound is
    still unpicked at every round, so a candidate whose upper bound is below the
    k-th best lower bound is never picked and is left out from the start. The
    remaining pool is scanned in index order, so ties break as over all of them.
    """
    n = len(scores)
    k = min(k, n)
    if lam >= 1.0 or k == 0:
        return np.argsort(-scores, kind="stable")[:k]
    scores = np.asarray(scores, dtype=np.float64)
    span = float(scores.max() - scores.min())
    upper = (lam / span) * (scores - scores.min()) if span > 0 else np.zeros(n)
    emb = np.asarray(embeddings, dtype=np.float32)
    weight = 1.0 - lam
    s_max = float(np.einsum("ij,ij->i", emb, emb).max())
    kth_lower = np.partition(upper, n - k)[n - k] - weight * s_max
    pool = np.flatnonzero(upper >= kth_lower)
    base, emb = upper[pool], np.ascontiguousarray(emb[pool])
    value, penalty = base.copy(), np.zeros(len(pool))
    sim = np.empty(len(pool), dtype=np.float32)
    order = np.empty(k, dtype=np.int64)
    for j in range(k):
        pick = int(value.argmax())
        order[j] = pick
        base[pick] = -np.inf  # picked: never again
        np.matmul(emb, emb[pick], out=sim)
        np.maximum(penalty, sim, out=penalty)
        np.subtract(base, weight * penalty, out=value)
    return pool[order]


def thompson_pick(
    clicks: np.ndarray, impressions: np.ndarray, slots: int, rng: np.random.Generator
) -> np.ndarray:
    """Indices of the ``slots`` rooms with the highest Beta posterior draws."""
    if slots <= 0 or len(clicks) == 0:
        return np.zeros(0, dtype=np.int64)
    misses = np.maximum(impressions - clicks, 0)
    draws = rng.beta(1.0 + clicks, 1.0 + misses)
    return np.argsort(-draws, kind="stable")[:slots]


def with_exploration(order: list[int], explore: list[int], k: int) -> tuple[list[int], set[int]]:
    """``order`` with the ``explore`` picks placed at evenly spaced positions of the top k."""
    explore = [e for e in explore if e not in set(order[:k])]
    if not explore:
        return order[:k], set()
    base = [i for i in order if i not in set(explore)][: k - len(explore)]
    step = max(1, len(base) // (len(explore) + 1))
    out = list(base)
    for j, pick in enumerate(explore):
        out.insert(min(len(out), (j + 1) * step + j), pick)
    return out[:k], set(explore)
