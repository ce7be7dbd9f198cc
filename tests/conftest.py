"""Shared fixtures: synthetic clustered unit vectors like slice embeddings."""

from __future__ import annotations

import numpy as np
import pytest


def clustered_vectors(
    n: int, dim: int, clusters: int, seed: int, noise: float = 0.25
) -> np.ndarray:
    """``n`` unit vectors around ``clusters`` random centres (float32)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    x = centres[rng.integers(0, clusters, n)] + noise * rng.standard_normal((n, dim))
    x = x.astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(scope="session")
def vectors() -> np.ndarray:
    """4000 clustered 16-d vectors: big enough for L=3 x N=8 to be stable, fast to fit."""
    return clustered_vectors(4000, 16, 24, seed=7)
