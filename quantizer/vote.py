"""Room-level LUCID: the per-level majority over a room's slice codes.

The vote is hierarchical. Level 1 takes the most frequent first code among all
slices; level l takes the most frequent l-th code among the slices that share
the prefix already chosen. The result is therefore always the code of at least
one slice, so every prefix of a room code is a prefix the ranker has seen on a
real slice (an independent per-level vote can stitch together a path no slice
has). Level 1 is the plain majority either way.

Tie-break (deterministic): among codes tied for the most votes, the one carried
by the latest slice wins, where rows are in time order (oldest first). A live
room drifting to new content therefore resolves ties toward what it shows now.
"""

from __future__ import annotations

import numpy as np

from quantizer.errors import QuantizerError


def room_lucid(slice_codes: np.ndarray) -> tuple[int, ...]:
    """The room code of ``slice_codes`` (n_slices, L), rows oldest first."""
    codes = np.asarray(slice_codes)
    if codes.ndim != 2 or len(codes) == 0:
        raise QuantizerError(f"need slice codes of shape (n>=1, L), got {codes.shape}")
    rows = np.arange(len(codes))
    chosen: list[int] = []
    for level in range(codes.shape[1]):
        column = codes[rows, level]
        values, counts = np.unique(column, return_counts=True)
        tied = values[counts == counts.max()]
        # latest occurrence among tied values: scan from the newest row backwards
        winner = next(int(v) for v in column[::-1] if v in tied)
        chosen.append(winner)
        rows = rows[column == winner]
    return tuple(chosen)


def format_lucid(code: tuple[int, ...] | np.ndarray) -> str:
    """``(12, 3, 40, 7)`` -> ``"12-3-40-7"``."""
    return "-".join(str(int(c)) for c in code)


def parse_lucid(text: str) -> tuple[int, ...]:
    """``"12-3-40-7"`` -> ``(12, 3, 40, 7)``."""
    try:
        return tuple(int(part) for part in text.split("-"))
    except ValueError:
        raise QuantizerError(f"not a LUCID code: {text!r} (expected e.g. 12-3-40-7)") from None
