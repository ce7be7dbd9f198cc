"""A versioned codebook: centroids ``[L, N, dim]`` plus what made them, as a folder.

Layout of a codebook folder::

    centroids.safetensors   tensor "centroids", float32 [L, N, dim]
    codebook.json           version, levels, codes, dim, seed, n_train, created_at,
                            parent_version, fit (the settings used), report,
                            sha256 of centroids.safetensors

A folder is written under a temporary name and renamed into place, so a reader
sees a whole codebook or none; loading checks the checksum, dtype and shape and
refuses a damaged folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from quantizer.assign import GreedyTables, beam_codes, greedy_codes
from quantizer.errors import CodebookError, QuantizerError

CENTROIDS_FILE = "centroids.safetensors"
META_FILE = "codebook.json"
FORMAT = 1


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class Codebook:
    """Residual centroids and their provenance; encodes and decodes LUCID codes."""

    centroids: np.ndarray
    seed: int
    n_train: int
    fit: dict[str, Any] = field(default_factory=dict)
    parent_version: str | None = None
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    report: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        c = self.centroids
        if c.ndim != 3 or c.dtype != np.float32:
            raise CodebookError(f"centroids must be float32 [L, N, dim], got {c.dtype} {c.shape}")

    @property
    def levels(self) -> int:
        return self.centroids.shape[0]

    @property
    def codes(self) -> int:
        return self.centroids.shape[1]

    @property
    def dim(self) -> int:
        return self.centroids.shape[2]

    @cached_property
    def version(self) -> str:
        """``<created_at>-<first 10 hex of the centroids' hash>``: unique and sortable by time."""
        stamp = self.created_at.replace("-", "").replace(":", "").split("+")[0]
        return f"{stamp}-{hashlib.sha256(self.centroids.tobytes()).hexdigest()[:10]}"

    @cached_property
    def _tables(self) -> GreedyTables:
        return GreedyTables.build(self.centroids)

    def with_report(self, report: dict[str, Any]) -> Codebook:
        """The same codebook carrying its quality report."""
        return replace(self, report=report)

    # --- encode / decode -------------------------------------------------------------

    def check_vectors(self, x: np.ndarray) -> np.ndarray:
        """``x`` as float32 (n, dim), refused if its shape does not fit this codebook."""
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise QuantizerError(
                f"vectors of shape {x.shape} do not fit this codebook (dim {self.dim})"
            )
        return np.ascontiguousarray(x, dtype=np.float32)

    def encode(self, x: np.ndarray, beam_width: int = 1, threads: int | None = None) -> np.ndarray:
        """LUCID codes (n, L) int32 in [0, N) of vectors ``x`` (n, dim)."""
        x = self.check_vectors(x)
        if beam_width <= 1:
            return greedy_codes(x, self._tables, threads)
        return beam_codes(x, self.centroids, beam_width)

    def encode_batches(
        self, batches: Iterator[np.ndarray], beam_width: int = 1
    ) -> Iterator[np.ndarray]:
        """Stream codes batch by batch, for inputs too large to hold at once."""
        for batch in batches:
            yield self.encode(batch, beam_width)

    def check_codes(self, codes: np.ndarray) -> np.ndarray:
        """``codes`` as int (n, l<=L) within [0, N), or a clear error."""
        codes = np.asarray(codes)
        if codes.ndim != 2 or not 1 <= codes.shape[1] <= self.levels:
            raise QuantizerError(f"codes must be (n, 1..{self.levels}), got shape {codes.shape}")
        if not np.issubdtype(codes.dtype, np.integer):
            raise QuantizerError(f"codes must be integers, got {codes.dtype}")
        if codes.size and (codes.min() < 0 or codes.max() >= self.codes):
            raise QuantizerError(f"codes must lie in [0, {self.codes})")
        return codes

    def decode(self, codes: np.ndarray, batch_size: int = 1 << 16) -> np.ndarray:
        """Reconstruction (n, dim) float32: the sum of the coded centroids (prefixes work too)."""
        codes = self.check_codes(codes)
        out = np.zeros((len(codes), self.dim), dtype=np.float32)
        for start in range(0, len(codes), batch_size):
            block = codes[start : start + batch_size]
            dest = out[start : start + batch_size]
            for level in range(block.shape[1]):
                dest += self.centroids[level].take(block[:, level], axis=0)
        return out

    # --- files -----------------------------------------------------------------------

    def metadata(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": self.version,
            "levels": self.levels,
            "codes": self.codes,
            "dim": self.dim,
            "seed": self.seed,
            "n_train": self.n_train,
            "created_at": self.created_at,
            "parent_version": self.parent_version,
            "fit": self.fit,
            "report": self.report,
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the folder at ``path`` (which must not exist) atomically."""
        path = Path(path)
        if path.exists():
            raise CodebookError(
                f"{path} already exists; codebooks are immutable, pick a new folder"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
        try:
            save_file({"centroids": self.centroids}, str(tmp / CENTROIDS_FILE))
            meta = self.metadata() | {"sha256": _sha256(tmp / CENTROIDS_FILE)}
            (tmp / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
            for file in tmp.iterdir():
                with file.open("rb") as fh:
                    os.fsync(fh.fileno())
            os.rename(tmp, path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Codebook:
        """Read and verify a codebook folder; any damage raises :class:`CodebookError`."""
        path = Path(path)
        meta_file, tensor_file = path / META_FILE, path / CENTROIDS_FILE
        if not path.is_dir():
            raise CodebookError(f"{path}: not a codebook folder (no such directory)")
        for file in (meta_file, tensor_file):
            if not file.is_file():
                raise CodebookError(f"{path}: damaged codebook, {file.name} is missing")
        try:
            meta = json.loads(meta_file.read_text(encoding="utf-8"))
            levels, codes, dim = int(meta["levels"]), int(meta["codes"]), int(meta["dim"])
            expected_sha = str(meta["sha256"])
        except (ValueError, KeyError, TypeError) as exc:
            raise CodebookError(
                f"{path}: damaged codebook, {META_FILE} is unreadable ({exc})"
            ) from exc
        if _sha256(tensor_file) != expected_sha:
            raise CodebookError(
                f"{path}: damaged codebook, {CENTROIDS_FILE} does not match its checksum"
            )
        try:
            centroids = load_file(str(tensor_file))["centroids"]
        except (SafetensorError, KeyError, OSError) as exc:
            raise CodebookError(f"{path}: damaged codebook, cannot read centroids ({exc})") from exc
        if centroids.dtype != np.float32 or centroids.shape != (levels, codes, dim):
            raise CodebookError(
                f"{path}: damaged codebook, centroids are {centroids.dtype} {centroids.shape}, "
                f"metadata says float32 {(levels, codes, dim)}"
            )
        if not np.isfinite(centroids).all():
            raise CodebookError(f"{path}: damaged codebook, centroids hold NaN or inf")
        book = cls(
            centroids=centroids,
            seed=int(meta.get("seed", 0)),
            n_train=int(meta.get("n_train", 0)),
            fit=dict(meta.get("fit") or {}),
            parent_version=meta.get("parent_version"),
            created_at=str(meta["created_at"]),
            report=meta.get("report"),
        )
        if book.version != meta.get("version"):
            raise CodebookError(f"{path}: damaged codebook, version does not match its centroids")
        return book
