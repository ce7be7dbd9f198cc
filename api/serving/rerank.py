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
    """Indices of ``k`` candidates in MMR order."""
    n = len(scores)
    k = min(k, n)
    if lam >= 1.0 or n == 0:
        return np.argsort(-scores, kind="stable")[:k]
    span = float(scores.max() - scores.min())
    relevance = (scores - scores.min()) / span if span > 0 else np.zeros(n)
    max_sim = np.zeros(n)
    chosen = np.zeros(n, dtype=bool)
    order = []
    for _ in range(k):
        value = lam * relevance - (1.0 - lam) * max_sim
        value[chosen] = -np.inf
        pick = int(np.argmax(value))
        order.append(pick)
        chosen[pick] = True
        max_sim = np.maximum(max_sim, embeddings @ embeddings[pick])
    return np.array(order, dtype=np.int64)


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
