"""Re-ranking: MMR against its textbook definition, and the exploration slots."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from api.serving.rerank import mmr, thompson_pick, with_exploration


def greedy_mmr(scores: np.ndarray, embeddings: np.ndarray, k: int, lam: float) -> list[int]:
    """MMR as defined: each round, the unpicked candidate of highest value, first on ties."""
    span = scores.max() - scores.min()
    relevance = (scores - scores.min()) / span if span > 0 else np.zeros(len(scores))
    picked: list[int] = []
    for _ in range(min(k, len(scores))):
        best, best_value = -1, -np.inf
        for i in range(len(scores)):
            if i in picked:
                continue
            penalty = max((float(embeddings[i] @ embeddings[j]) for j in picked), default=0.0)
            value = lam * relevance[i] - (1 - lam) * max(penalty, 0.0)
            if value > best_value:
                best, best_value = i, value
        picked.append(best)
    return picked


@settings(max_examples=80, deadline=None)
@given(
    n=st.integers(1, 120),
    k=st.integers(1, 12),
    lam=st.sampled_from([0.0, 0.3, 0.7, 0.9]),
    tied=st.booleans(),
    clustered=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_mmr_over_a_pool_picks_exactly_what_the_greedy_definition_picks(
    n: int, k: int, lam: float, tied: bool, clustered: bool, seed: int
) -> None:
    """Over 4k candidates the first pool leaves some out; near-duplicate embeddings
    penalise its picks until the check fails and the loop runs over all of them."""
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 3, n).astype(float) if tied else rng.random(n)
    embeddings = rng.standard_normal((n, 6)).astype(np.float32)
    if clustered:
        embeddings[: n // 2] = embeddings[0] + 0.05 * embeddings[: n // 2]
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    embeddings[: n // 3] = 0.0  # rooms with no embedding yet
    assert mmr(scores, embeddings, k, lam).tolist() == greedy_mmr(scores, embeddings, k, lam)


def test_mmr_pushes_a_near_duplicate_below_a_different_room() -> None:
    scores = np.array([1.0, 0.99, 0.9, 0.0])
    same = np.array([1.0, 0.0])
    embeddings = np.array([same, same, [0.0, 1.0], [0.6, 0.8]], dtype=np.float32)
    assert mmr(scores, embeddings, 3, 1.0).tolist() == [0, 1, 2]
    assert mmr(scores, embeddings, 3, 0.5).tolist()[:2] == [0, 2]


def test_exploration_places_new_rooms_inside_the_top_k_once() -> None:
    order, explored = with_exploration(list(range(10)), [8, 2], k=5)
    assert len(order) == 5 and 8 in order and explored == {8}
    assert len(set(order)) == 5


def test_thompson_favours_rooms_that_convert() -> None:
    rng = np.random.default_rng(0)
    clicks, shown = np.array([0.0, 40.0]), np.array([50.0, 50.0])
    wins = sum(int(thompson_pick(clicks, shown, 1, rng)[0]) for _ in range(200))
    assert wins > 190


def test_thompson_draws_follow_the_beta_posteriors() -> None:
    """An unseen room draws Beta(1, 1), uniform; one shown once and clicked draws
    Beta(2, 1), density 2x, which beats a uniform draw with probability E[x] = 2/3."""
    rng = np.random.default_rng(1)
    clicks, shown = np.array([0.0, 1.0]), np.array([0.0, 1.0])
    wins = sum(int(thompson_pick(clicks, shown, 1, rng)[0]) for _ in range(6000))
    assert abs(wins / 6000 - 2 / 3) < 0.02  # 3.3 standard errors
