"""Held-out retrieval quality: recall@k of query -> slice over the held-out gallery."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from encoder.slice_encoder import SliceEncoder
from encoder.training.pairs import Pair


def recall_at_k(
    encoder: SliceEncoder, pairs: Sequence[Pair], ks: Sequence[int], batch_size: int = 64
) -> dict[str, float]:
    """Share of distinct held-out queries with at least one of their positives in the top k.

    The gallery is every distinct slice (by slice_id) of ``pairs``; a query's
    positives are the slices paired with that same query text (the relation the
    false-negative mask uses), so for unique queries this is the usual "own
    slice in the top k".
    """
    gallery: dict[str, int] = {}
    slices = []
    positives: dict[str, set[int]] = defaultdict(set)
    for pair in pairs:
        if pair.slice.slice_id not in gallery:
            gallery[pair.slice.slice_id] = len(slices)
            slices.append(pair.slice)
        positives[pair.query].add(gallery[pair.slice.slice_id])
    queries = list(positives)
    scores = encoder.encode_queries(queries, batch_size) @ encoder.encode(slices, batch_size).T
    relevant = np.zeros(scores.shape, dtype=bool)
    for row, query in enumerate(queries):
        relevant[row, list(positives[query])] = True
    # Rank of a query's best positive: how many gallery slices score strictly higher.
    best = np.where(relevant, scores, -np.inf).max(axis=1)
    rank = (scores > best[:, None]).sum(axis=1)
    result = {f"recall@{k}": float((rank < k).mean()) for k in ks}
    return result | {"queries": float(len(queries)), "gallery": float(len(slices))}
