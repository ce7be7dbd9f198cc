"""Embeddings on disk: one ``.npy`` file or a folder of ``.npy`` shards, read lazily.

Shards are memory-mapped and streamed in batches, so 10M+ vectors pass through
fit, encode and report without being held in memory at once. Every batch is
checked for NaN/inf rows as it is read; the error names the file and row.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from quantizer.errors import QuantizerError


class EmbeddingSource:
    """A read-only, validated view of (n, dim) float vectors split across one or more shards."""

    def __init__(self, shards: list[np.ndarray], names: list[str]) -> None:
        dims = {s.shape[1] for s in shards}
        if len(dims) != 1:
            detail = ", ".join(f"{n}: {s.shape[1]}" for n, s in zip(names, shards, strict=True))
            raise QuantizerError(f"shards disagree on the dimension ({detail})")
        self.shards = shards
        self.names = names
        self.dim = dims.pop()
        self.offsets = np.cumsum([0] + [len(s) for s in shards])

    @classmethod
    def from_array(cls, array: np.ndarray, name: str = "<array>") -> EmbeddingSource:
        """Wrap an in-memory array (validated like a file)."""
        return cls([_check_matrix(np.asarray(array), name)], [name])

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> EmbeddingSource:
        """Open an ``.npy`` file or a folder of ``.npy`` shards (sorted by name)."""
        path = Path(path)
        if path.is_dir():
            files = sorted(path.glob("*.npy"))
            if not files:
                raise QuantizerError(f"{path}: folder holds no .npy shards")
        elif path.is_file():
            files = [path]
        else:
            raise QuantizerError(f"{path}: no such file or folder of .npy embeddings")
        shards = []
        for file in files:
            try:
                array = np.load(file, mmap_mode="r", allow_pickle=False)
            except (OSError, ValueError, EOFError) as exc:
                raise QuantizerError(f"{file}: not a readable .npy array ({exc})") from exc
            shards.append(_check_matrix(array, str(file)))
        return cls(shards, [str(f) for f in files])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def batches(self, batch_size: int) -> Iterator[np.ndarray]:
        """Yield contiguous float32 batches in order; raise on the first non-finite row."""
        for shard, name in zip(self.shards, self.names, strict=True):
            for start in range(0, len(shard), batch_size):
                batch = np.ascontiguousarray(shard[start : start + batch_size], dtype=np.float32)
                _check_finite(batch, name, start)
                yield batch

    def take(self, indices: np.ndarray) -> np.ndarray:
        """Rows at sorted global ``indices`` as one float32 array (for training samples)."""
        parts = []
        for k, (shard, name) in enumerate(zip(self.shards, self.names, strict=True)):
            lo, hi = np.searchsorted(indices, self.offsets[k : k + 2])
            local = indices[lo:hi] - self.offsets[k]
            if len(local):
                rows = np.asarray(shard[local], dtype=np.float32)
                bad = ~np.isfinite(rows).all(axis=1)
                if bad.any():
                    raise QuantizerError(
                        f"{name}: row {int(local[np.argmax(bad)])} holds NaN or inf; "
                        "drop or repair it before fitting"
                    )
                parts.append(rows)
        return np.concatenate(parts) if parts else np.empty((0, self.dim), np.float32)

    def sample(self, n: int, seed: int) -> np.ndarray:
        """At most ``n`` rows drawn without replacement (all rows, in order, if there are fewer)."""
        total = len(self)
        if n >= total:
            return self.take(np.arange(total))
        rng = np.random.default_rng(seed)
        return self.take(np.sort(rng.choice(total, size=n, replace=False)))

    def validate(self, batch_size: int = 1 << 16) -> None:
        """Read every row once, so bad input is refused before anything is written."""
        for _ in self.batches(batch_size):
            pass


def _check_matrix(array: np.ndarray, name: str) -> np.ndarray:
    if array.ndim != 2:
        raise QuantizerError(f"{name}: expected a 2-d (n, dim) array, got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.floating):
        raise QuantizerError(f"{name}: expected float vectors, got dtype {array.dtype}")
    if array.shape[1] == 0:
        raise QuantizerError(f"{name}: vectors have dimension 0")
    return array


def _check_finite(batch: np.ndarray, name: str, offset: int) -> None:
    bad = ~np.isfinite(batch).all(axis=1)
    if bad.any():
        row = offset + int(np.argmax(bad))
        raise QuantizerError(f"{name}: row {row} holds NaN or inf; drop or repair it first")
