"""The quality report of a codebook on a set of vectors, optionally against a parent.

Per level l (reconstruction from the first l levels):
- ``mse``: mean over vectors of ||x - x_hat||^2
- ``relative_error``: sum ||x - x_hat||^2 / sum ||x||^2
- ``utilisation``: distinct codes used at this level / N
- ``perplexity``: exp(entropy) of this level's code distribution (N when uniform)
- ``churn`` (with a parent): share of vectors whose prefix up to this level differs
  from the parent's code for the same vector
Plus full-code collisions: vectors per distinct full code (mean, max).

Everything streams over the input in batches, so it runs on 10M+ vectors.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from rich.table import Table
from tqdm.auto import tqdm

from quantizer.codebook import Codebook
from quantizer.embeddings import EmbeddingSource
from quantizer.errors import CodebookError


def pack_codes(codes: np.ndarray, n_codes: int) -> np.ndarray:
    """Full codes (n, L) packed into one int64 each (exact: L * log2(N) <= 63 bits)."""
    packed = np.zeros(len(codes), dtype=np.int64)
    for level in range(codes.shape[1]):
        packed = packed * n_codes + codes[:, level]
    return packed


def quality_report(
    codebook: Codebook,
    source: EmbeddingSource,
    parent: Codebook | None = None,
    *,
    batch_size: int = 1 << 16,
    beam_width: int = 1,
    progress: bool = False,
) -> dict[str, Any]:
    """Measure ``codebook`` on every vector of ``source`` (see the module doc for the fields)."""
    if source.dim != codebook.dim:
        raise CodebookError(f"vectors have dim {source.dim}, the codebook expects {codebook.dim}")
    if parent is not None and (parent.dim, parent.levels) != (codebook.dim, codebook.levels):
        raise CodebookError("the parent codebook's dim or level count differs from this one's")
    levels, n_codes = codebook.levels, codebook.codes
    sq_err = np.zeros(levels)
    sq_norm = 0.0
    counts = np.zeros((levels, n_codes), dtype=np.int64)
    churned = np.zeros(levels, dtype=np.int64)
    # full codes as one int64 each where they fit, else as rows (np.unique on axis 0)
    packable = levels * math.log2(n_codes) <= 63
    full_codes: list[np.ndarray] = []
    n = 0
    bar = tqdm(total=len(source), desc="report", unit="vec", disable=not progress)
    for batch in source.batches(batch_size):
        codes = codebook.encode(batch, beam_width)
        residual = batch.copy()
        sq_norm += float(np.einsum("nd,nd->", batch, batch, dtype=np.float64))
        for level in range(levels):
            residual -= codebook.centroids[level].take(codes[:, level], axis=0)
            sq_err[level] += float(np.einsum("nd,nd->", residual, residual, dtype=np.float64))
            counts[level] += np.bincount(codes[:, level], minlength=n_codes)
        if parent is not None:
            differs = np.cumsum(codes != parent.encode(batch, beam_width), axis=1) > 0
            churned += differs.sum(axis=0)
        full_codes.append(pack_codes(codes, n_codes) if packable else codes)
        n += len(batch)
        bar.update(len(batch))
    bar.close()
    _, per_code = np.unique(np.concatenate(full_codes), axis=0, return_counts=True)
    probs = counts / max(n, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = -np.where(probs > 0, probs * np.log(probs), 0.0).sum(axis=1)
    per_level = []
    for level in range(levels):
        row: dict[str, Any] = {
            "level": level + 1,
            "mse": float(sq_err[level] / n),
            "relative_error": float(sq_err[level] / sq_norm) if sq_norm else 0.0,
            "utilisation": float((counts[level] > 0).sum() / n_codes),
            "perplexity": float(np.exp(entropy[level])),
        }
        if parent is not None:
            row["churn"] = float(churned[level] / n)
        per_level.append(row)
    return {
        "codebook_version": codebook.version,
        "parent_version": parent.version if parent is not None else None,
        "n_vectors": n,
        "levels": levels,
        "codes": n_codes,
        "dim": codebook.dim,
        "per_level": per_level,
        "collisions": {
            "distinct_codes": len(per_code),
            "mean_per_code": float(per_code.mean()),
            "max_per_code": int(per_code.max()),
        },
    }


def report_table(report: dict[str, Any]) -> Table:
    """The report as a rich table for the terminal."""
    has_churn = report["parent_version"] is not None
    title = f"codebook {report['codebook_version']} on {report['n_vectors']:,} vectors"
    if has_churn:
        title += f" (churn vs {report['parent_version']})"
    table = Table(title=title)
    columns = ["level", "MSE", "rel. error", "utilisation", "perplexity"]
    for name in columns + (["churn"] if has_churn else []):
        table.add_column(name, justify="right")
    for row in report["per_level"]:
        cells = [
            str(row["level"]),
            f"{row['mse']:.5f}",
            f"{row['relative_error']:.4f}",
            f"{row['utilisation']:.1%}",
            f"{row['perplexity']:.1f}",
        ]
        if has_churn:
            cells.append(f"{row['churn']:.2%}")
        table.add_row(*cells)
    col = report["collisions"]
    table.caption = (
        f"full codes: {col['distinct_codes']:,} distinct, "
        f"{col['mean_per_code']:.2f} vectors per code on average, at most {col['max_per_code']:,}"
    )
    return table
