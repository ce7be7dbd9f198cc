"""The model store: a folder per ranker variant holding snapshots, sparse deltas and dense weights.

Layout (several variants share one root; the A/B API serves each)::

    <root>/<variant>/snapshots/<version:012d>-<run>.safetensors  all state: resume, start servers
    <root>/<variant>/deltas/<version:012d>-<run>.safetensors     rows changed since the last delta
    <root>/<variant>/dense/<version:012d>-<run>.safetensors      the dense model's weights

``version`` counts the trainer's changes to the model (optimizer steps and code
migrations) up to the file; ``run`` (8 hex digits) names the
trainer run that wrote it, so a server notices when a trainer restarted from a
snapshot and the deltas it had applied belong to an abandoned run.

Every file is a plain safetensors file whose metadata holds ``meta`` (JSON) and
``sha256``, the digest of the meta and of every tensor's name, dtype, shape and
bytes. A file is written under a dot-prefixed temporary name, fsynced and renamed
into place, so readers see whole files only; a file whose digest does not match
is refused with :class:`StoreError`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from ranker.errors import StoreError

Kind = Literal["snapshots", "deltas", "dense"]
KINDS: tuple[Kind, ...] = ("snapshots", "deltas", "dense")
FORMAT = 1
_NAME = re.compile(r"^(\d{12})-([0-9a-f]{8})\.safetensors$")


@dataclass(frozen=True, order=True)
class StoreEntry:
    """One file in the store: the version it reflects, the run that wrote it, its path."""

    version: int
    run: str
    path: Path


def _digest(meta_json: str, tensors: Mapping[str, torch.Tensor]) -> str:
    digest = hashlib.sha256(meta_json.encode("utf-8"))
    for name in sorted(tensors):
        tensor = tensors[name].contiguous()
        digest.update(f"\0{name}\0{tensor.dtype}\0{tuple(tensor.shape)}\0".encode())
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()


class ModelStore:
    """One variant's folder of the model store."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    @classmethod
    def open(cls, root: str | os.PathLike[str], variant: str) -> ModelStore:
        """The folder of ``variant`` under the store ``root``."""
        return cls(Path(root) / variant)

    def folder(self, kind: Kind) -> Path:
        return self.path / kind

    def write(
        self,
        kind: Kind,
        version: int,
        run: str,
        tensors: Mapping[str, torch.Tensor],
        meta: Mapping[str, Any],
    ) -> Path:
        """Write one file atomically (temporary name, fsync, rename); returns its path."""
        folder = self.folder(kind)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{version:012d}-{run}.safetensors"
        tmp = folder / f".{path.name}.{os.getpid()}.tmp"
        tensors = {name: t.detach().contiguous() for name, t in tensors.items()}
        meta_json = json.dumps(dict(meta) | {"format": FORMAT, "kind": kind, "version": version})
        try:
            save_file(
                tensors,
                str(tmp),
                metadata={"meta": meta_json, "sha256": _digest(meta_json, tensors)},
            )
            with tmp.open("rb") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return path

    def entries(self, kind: Kind) -> list[StoreEntry]:
        """The files of ``kind``, oldest version first (temporary files are not listed)."""
        folder = self.folder(kind)
        if not folder.is_dir():
            return []
        found = []
        for item in os.scandir(folder):
            match = _NAME.match(item.name)
            if match:
                found.append(StoreEntry(int(match[1]), match[2], Path(item.path)))
        return sorted(found)

    def read(
        self, entry: StoreEntry | Path, kind: Kind | None = None
    ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Tensors and meta of a file, verified; a damaged or foreign file raises StoreError."""
        path = entry.path if isinstance(entry, StoreEntry) else Path(entry)
        try:
            with safe_open(str(path), framework="pt") as fh:
                header = fh.metadata() or {}
                tensors = {name: fh.get_tensor(name) for name in fh.keys()}  # noqa: SIM118
        except FileNotFoundError:
            raise StoreError(f"{path}: no such model store file") from None
        except (SafetensorError, OSError, ValueError) as exc:
            raise StoreError(f"{path}: damaged model store file, unreadable ({exc})") from exc
        meta_json, expected = header.get("meta"), header.get("sha256")
        if meta_json is None or expected is None:
            raise StoreError(f"{path}: not a lucidrec model store file (no meta or checksum)")
        if _digest(meta_json, tensors) != expected:
            raise StoreError(
                f"{path}: damaged model store file, contents do not match the checksum; "
                "delete it (servers then load the next snapshot, a trainer resumes from the "
                "previous one)"
            )
        meta = json.loads(meta_json)
        if kind is not None and meta.get("kind") != kind:
            raise StoreError(f"{path}: holds {meta.get('kind')!r}, expected {kind!r}")
        return tensors, meta

    def remove(self, entry: StoreEntry) -> None:
        entry.path.unlink(missing_ok=True)

    def signature(self) -> tuple[int, ...]:
        """Modification times of the three folders: unchanged means nothing was published."""
        stamps = []
        for kind in KINDS:
            try:
                stamps.append(os.stat(self.folder(kind)).st_mtime_ns)
            except FileNotFoundError:
                stamps.append(0)
        return tuple(stamps)
