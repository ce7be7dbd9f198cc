"""Helpers every benchmark shares: timing, JSON output, the research data's location."""

from __future__ import annotations

import json
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO.parent / "shared" / "data" / "movielens100k_tmdb"


def timed(fn: Callable[[], T], repeat: int = 1) -> tuple[T, float]:
    """Result of ``fn`` and its best wall time over ``repeat`` runs, in seconds."""
    best = float("inf")
    result: T
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return result, best


def interleaved(fns: dict[str, Callable[[], T]], repeat: int) -> dict[str, tuple[T, float]]:
    """Best wall time of each function over ``repeat`` rounds, run in turn (a, b, a, b, ...).

    Interleaving spreads any background load over all contenders alike, so the
    ratio of two best times holds on a busy machine.
    """
    best: dict[str, tuple[T, float]] = {}
    for _ in range(repeat):
        for name, fn in fns.items():
            start = time.perf_counter()
            result = fn()
            elapsed = time.perf_counter() - start
            if name not in best or elapsed < best[name][1]:
                best[name] = (result, elapsed)
    return best


def log(message: str) -> None:
    """Progress on stderr, so stdout stays one JSON document."""
    print(message, file=sys.stderr, flush=True)


def machine() -> dict[str, Any]:
    import os

    return {"python": platform.python_version(), "cpus": os.cpu_count(), "numpy": np.__version__}


def emit(result: dict[str, Any]) -> None:
    """Print the benchmark's JSON document on stdout."""
    json.dump(result | {"machine": machine()}, sys.stdout, indent=2, default=float)
    print()


def clustered_unit_vectors(n: int, dim: int, clusters: int, seed: int) -> np.ndarray:
    """Unit vectors from a two-level mixture (topics, then sub-topics), like slice embeddings."""
    rng = np.random.default_rng(seed)
    topics = rng.standard_normal((clusters // 16, dim)).astype(np.float32)
    subs = topics.repeat(16, axis=0) + 0.5 * rng.standard_normal((clusters, dim)).astype(np.float32)
    x = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 1 << 18):
        m = min(1 << 18, n - start)
        block = subs[rng.integers(0, clusters, m)]
        block += 0.6 * rng.standard_normal((m, dim), dtype=np.float32)
        x[start : start + m] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return x
