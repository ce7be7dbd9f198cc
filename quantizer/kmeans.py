"""One level of RQ-KMeans: k-means on a (sampled) set of residuals with faiss.

Seeding is k-means++ (greedy variant with 2 + ln k local trials, as scikit-learn
does) computed here, then faiss Lloyd iterations; or faiss's random seeding.
Either way the best of ``nredo`` runs is kept. A warm start passes the parent's
centroids instead and runs once.
GPU faiss is used when the install has it and a GPU is visible.
"""

from __future__ import annotations

import math

import faiss
import numpy as np


def gpu_available() -> bool:
    """True where GPU faiss is installed and sees at least one device."""
    return hasattr(faiss, "get_num_gpus") and faiss.get_num_gpus() > 0


def kmeans_plus_plus(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k centres picked by greedy k-means++ (D^2 sampling, best of several trials per pick)."""
    n = len(x)
    sq = np.einsum("nd,nd->n", x, x)
    trials = 2 + int(math.log(k))
    centres = np.empty((k, x.shape[1]), dtype=np.float32)
    first = rng.integers(n)
    centres[0] = x[first]
    closest = np.maximum(sq - 2.0 * x @ x[first] + sq[first], 0.0)
    for i in range(1, k):
        total = float(closest.sum())
        if total <= 0.0:  # fewer distinct points than k: duplicates are the only choice
            candidates = rng.integers(n, size=trials)
        else:
            candidates = np.searchsorted(np.cumsum(closest), rng.random(trials) * total)
            candidates = np.minimum(candidates, n - 1)
        dist = np.maximum(sq[None, :] - 2.0 * x[candidates] @ x.T + sq[candidates, None], 0.0)
        pot = np.minimum(closest[None, :], dist)
        best = int(np.argmin(pot.sum(axis=1)))
        centres[i] = x[candidates[best]]
        closest = pot[best]
    return centres


def train_kmeans(
    x: np.ndarray,
    k: int,
    *,
    niter: int,
    seed: int,
    init: str = "kmeans++",
    nredo: int = 1,
    init_centroids: np.ndarray | None = None,
    use_gpu: bool = False,
) -> np.ndarray:
    """k float32 centroids of ``x`` (n >= k rows); deterministic for a seed on CPU.

    ``nredo`` runs are made and the one of least k-means objective is kept; a warm
    start (``init_centroids``) is a single run, since its point is to stay close.
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    n, d = x.shape
    runs = 1 if init_centroids is not None else nredo
    best: tuple[float, np.ndarray] | None = None
    for run in range(runs):
        km = faiss.Kmeans(
            d,
            k,
            niter=niter,
            seed=seed + run,
            gpu=use_gpu,
            # the caller already sampled: let faiss use every row it is given, silently
            max_points_per_centroid=max(1, -(-n // k)),
            min_points_per_centroid=1,
            verbose=False,
        )
        start = init_centroids
        if start is None and init == "kmeans++":
            start = kmeans_plus_plus(x, k, np.random.default_rng([seed, run]))
        if start is not None:
            km.train(x, init_centroids=np.ascontiguousarray(start, dtype=np.float32))
        else:
            km.train(x)
        if best is None or km.obj[-1] < best[0]:
            best = (float(km.obj[-1]), np.ascontiguousarray(km.centroids, dtype=np.float32))
    assert best is not None
    return best[1]


def nearest(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Index of the nearest centroid for each row (exact L2, faiss flat search)."""
    index = faiss.IndexFlatL2(centroids.shape[1])
    index.add(np.ascontiguousarray(centroids, dtype=np.float32))
    _, found = index.search(np.ascontiguousarray(x, dtype=np.float32), 1)
    return found[:, 0]
