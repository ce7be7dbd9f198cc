"""Residual assignment kernels: greedy (fast path) and beam search.

Greedy encoding never materialises residuals. With centroids ``C[l]`` and codes
``k_j`` chosen at the levels before ``l``, the squared distance of the residual
``r_l = x - sum_j C[j][k_j]`` to centroid ``c`` is, up to terms constant in ``c``::

    |c|^2 - 2 x.c + 2 sum_{j<l} C[j][k_j].c

so one small table ``G[j, l] = C[j] @ C[l].T`` per level pair (faiss calls this
the beam LUT) replaces the residual update: per vector, L gemv-sized products
against the raw input plus a few 64-wide table rows. Chunks of a few thousand
rows run on a thread pool with BLAS pinned to one thread per worker, which on a
2-core machine is faster than one BLAS call with two threads.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

CHUNK_ROWS = 4096


@dataclass(frozen=True)
class GreedyTables:
    """Precomputed per-codebook terms for :func:`greedy_codes`."""

    weights: np.ndarray  # (L, d, N): 2 * C[l].T, so x @ weights[l] = 2 x.C[l]
    norms: np.ndarray  # (L, N): |C[l]|^2
    cross: np.ndarray  # (L, L, N, N): 2 * C[j] @ C[l].T, used for j < l

    @classmethod
    def build(cls, centroids: np.ndarray) -> GreedyTables:
        c = np.asarray(centroids, dtype=np.float32)
        return cls(
            weights=np.ascontiguousarray(2.0 * c.transpose(0, 2, 1)),
            norms=np.einsum("lnd,lnd->ln", c, c).astype(np.float32),
            cross=(2.0 * np.einsum("jad,lbd->jlab", c, c)).astype(np.float32),
        )


def _greedy_chunk(x: np.ndarray, tables: GreedyTables, out: np.ndarray) -> None:
    """Greedy codes of ``x`` written into ``out`` (len(x), L); scores are maximised."""
    levels, _, n_codes = tables.weights.shape
    score = np.empty((len(x), n_codes), dtype=np.float32)
    for level in range(levels):
        np.matmul(x, tables.weights[level], out=score)
        score -= tables.norms[level]
        for prev in range(level):
            score -= tables.cross[prev, level].take(out[:, prev], axis=0)
        out[:, level] = score.argmax(axis=1)


def greedy_codes(x: np.ndarray, tables: GreedyTables, threads: int | None = None) -> np.ndarray:
    """Greedy residual codes (n, L) int32 of float32 rows ``x``."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    out = np.empty((len(x), tables.weights.shape[0]), dtype=np.int32)
    jobs = [(x[i : i + CHUNK_ROWS], out[i : i + CHUNK_ROWS]) for i in range(0, len(x), CHUNK_ROWS)]
    workers = min(threads or os.cpu_count() or 1, len(jobs))
    if workers <= 1:
        for chunk, dest in jobs:
            _greedy_chunk(chunk, tables, dest)
        return out
    with threadpool_limits(1, user_api="blas"), ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda job: _greedy_chunk(job[0], tables, job[1]), jobs))
    return out


def beam_codes(x: np.ndarray, centroids: np.ndarray, beam_width: int) -> np.ndarray:
    """Codes (n, L) int32 that keep the ``beam_width`` best partial codes per level.

    At each level every kept candidate is extended by every centroid and the
    ``beam_width`` extensions of least residual error survive; the final code is
    the best survivor. ``beam_width=1`` equals greedy assignment.
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    levels, n_codes, _ = centroids.shape
    norms = np.einsum("lnd,lnd->ln", centroids, centroids)
    out = np.empty((len(x), levels), dtype=np.int32)
    for start in range(0, len(x), CHUNK_ROWS):
        chunk = x[start : start + CHUNK_ROWS]
        m = len(chunk)
        residual = chunk[:, None, :]  # (m, B, d)
        error = np.zeros((m, 1), dtype=np.float32)  # residual error up to a per-row constant
        codes = np.zeros((m, 1, 0), dtype=np.int32)
        for level in range(levels):
            b = residual.shape[1]
            # error after adding centroid k: error_b - 2 r_b.c_k + |c_k|^2
            ext = error[:, :, None] - 2.0 * (residual @ centroids[level].T) + norms[level]
            flat = ext.reshape(m, b * n_codes)
            # a stable sort keeps ties deterministic: the lower (parent, code) index wins
            top = np.argsort(flat, axis=1, kind="stable")[:, :beam_width]
            parent, code = np.divmod(top, n_codes)
            rows = np.arange(m)[:, None]
            error = flat[rows, top]
            residual = residual[rows, parent] - centroids[level][code]
            codes = np.concatenate([codes[rows, parent], code[:, :, None].astype(np.int32)], 2)
        out[start : start + m] = codes[:, 0]
    return out
