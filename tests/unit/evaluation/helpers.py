"""Small in-memory datasets for the evaluation's unit tests."""

from __future__ import annotations

import numpy as np

from api.evaluation.adapters import Dataset
from encoder.slices import SliceInput


def dataset(
    user: list[str],
    item: list[int],
    ts: list[float],
    label: list[float] | None = None,
    n_items: int | None = None,
) -> Dataset:
    """Events (already in time order) on items ``it0``, ``it1``, ... with titles only."""
    n_items = n_items if n_items is not None else max(item) + 1
    return Dataset(
        "test",
        np.asarray(user, dtype=object),
        np.asarray(item, dtype=np.int64),
        np.asarray(ts, dtype=np.float64),
        np.asarray(label if label is not None else [1.0] * len(ts), dtype=np.float64),
        {},
        [SliceInput(slice_id=f"it{i}", title=f"item {i}") for i in range(n_items)],
        np.full(n_items, np.nan),
    )


def random_dataset(n: int, n_users: int, n_items: int, span_s: float, seed: int) -> Dataset:
    """``n`` events of random users on random items, uniform in time over ``span_s``."""
    rng = np.random.default_rng(seed)
    return dataset(
        [f"u{u}" for u in rng.integers(0, n_users, n)],
        rng.integers(0, n_items, n).tolist(),
        np.sort(rng.random(n) * span_s).tolist(),
        (rng.random(n) < 0.5).astype(float).tolist(),
        n_items,
    )
