"""Code migration: when the codebook version changes, new prefix rows start from the old ones.

A quantizer retrain gives rooms new codes. The rows learned for the old prefixes
still describe those rooms, so each new prefix row starts as the count-weighted
mean of the old rows of the rooms that now map to it, instead of from the default
row. For a room r with weight w_r (its events, slices or impressions: what the
caller counts) and each level l::

    E_new[(l, new prefix of r)] = sum_r w_r E_old[(l, old prefix of r)] / sum_r w_r

over the rooms whose old key has a row of its own. A new key none of whose rooms
moved (all had exactly this key before) keeps its row and optimizer state: with a
warm-started codebook most codes keep their meaning, and their rows stay as they
are. All new rows are computed from the old table before any is written.

The workers call this (through :meth:`OnlineTrainer.migrate_codes`) after a
quantizer retrain, with the old and new codes of the live rooms; the migrated rows
reach the servers with the next delta. Old keys nobody uses any more expire.
"""

from __future__ import annotations

import numpy as np
import torch

from ranker.errors import RankerError
from ranker.key_index import check_keys
from ranker.keys import LucidKeys
from ranker.table import CollisionlessTable


def migrate_prefix_rows(
    table: CollisionlessTable,
    keys: LucidKeys,
    old_codes: np.ndarray,
    new_codes: np.ndarray,
    counts: np.ndarray | None = None,
    *,
    version: int,
    now: float,
) -> int:
    """Write the new keys' rows of ``table`` from the old ones; returns how many were written.

    ``old_codes`` and ``new_codes`` are (n, L) codes of the same n rooms under the old
    and the new codebook; ``counts`` (n,) weighs them (default 1 each).
    """
    old = keys.check(old_codes, "old codes")
    new = keys.check(new_codes, "new codes")
    if old.shape != new.shape or old.ndim != 2:
        raise RankerError(
            f"old and new codes must both be (n, {keys.levels}) for the same rooms, "
            f"got {old.shape} and {new.shape}"
        )
    weights = np.ones(len(old)) if counts is None else np.asarray(counts, dtype=np.float64)
    if weights.shape != (len(old),) or (weights < 0).any() or not np.isfinite(weights).all():
        raise RankerError(f"counts must be ({len(old)},) finite and >= 0, got {weights.shape}")
    old_keys, new_keys = keys(old).reshape(-1), keys(new).reshape(-1)
    weights = np.repeat(weights, keys.levels)
    rows = table.slots.find(check_keys(old_keys))
    usable = (rows > 0) & (weights > 0)
    if not usable.any():
        return 0
    targets, inverse = np.unique(new_keys[usable], return_inverse=True)
    moved = np.bincount(inverse, weights=old_keys[usable] != new_keys[usable]) > 0
    w = torch.from_numpy(weights[usable]).to(table.weight.dtype)
    sums = torch.zeros(targets.size, table.dim).index_add_(
        0, torch.from_numpy(inverse), table.weight[torch.from_numpy(rows[usable])] * w[:, None]
    )
    totals = torch.zeros(targets.size).index_add_(0, torch.from_numpy(inverse), w)
    means = sums / totals[:, None]
    chosen = torch.from_numpy(np.flatnonzero(moved))
    table.assign(targets[moved], means[chosen], version, now)
    return int(moved.sum())
