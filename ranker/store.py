"""The model store: a folder per ranker variant holding snapshots, sparse deltas and dense weights.

Layout (several variants share one root; the A/B API serves each)::

    <root>/<variant>/snapshots/<version:012d>-<run>.safetensors  all state: resume, start servers
    <root>/<variant>/deltas/<version:012d>-<run>.safetensors     rows changed since the snapshot
    <root>/<variant>/dense/<version:012d>-<run>.safetensors      the dense model's weights
    <root>/<variant>/live                                        the live run's id

``version`` counts the trainer's changes to the model (optimizer steps and code
migrations) up to the file; ``run`` (8 hex digits) names the
trainer run that wrote it, so a server notices when a trainer restarted from a
snapshot and the deltas it had applied belong to an abandoned run.

**The live run.** Versions of two runs do not compare: a trainer that starts
afresh (every snapshot unreadable, a new variant) counts from 0 again, below a
dead run's files. So the publisher names its run in ``live`` (written
atomically) once its first snapshot is on disk, and servers follow that run's
files only; a trainer resumes from the live run's newest intact snapshot, then
from other runs' (older recovery points). A store written before the marker
existed, or one whose marker is unreadable, takes the run of its newest snapshot.

Every file is a plain safetensors file whose metadata holds ``meta`` (JSON) and
``sha256``, the digest of the meta and of every tensor's name, dtype, shape and
bytes. A file is written under a dot-prefixed temporary name, fsynced and renamed
into place, so readers see whole files only; a file whose digest does not match
is refused with :class:`StoreError`, and :meth:`ModelStore.intact` skips it with a
warning that names it, so a reader falls back to the next file by itself.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
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
_RUN = re.compile(r"^[0-9a-f]{8}$")
LIVE = "live"
logger = logging.getLogger(__name__)


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


def _replace_atomically(path: Path, fill: Callable[[Path], None]) -> None:
    """``fill`` a dot-prefixed temporary file, fsync it and rename it to ``path``."""
    tmp = path.parent / f".{path.name}.{os.getpid()}.tmp"
    try:
        fill(tmp)
        with tmp.open("rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


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
        tensors = {name: t.detach().contiguous() for name, t in tensors.items()}
        meta_json = json.dumps(dict(meta) | {"format": FORMAT, "kind": kind, "version": version})
        metadata = {"meta": meta_json, "sha256": _digest(meta_json, tensors)}
        _replace_atomically(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))
        return path

    def entries(self, kind: Kind, run: str | None = None) -> list[StoreEntry]:
        """The files of ``kind`` (of ``run`` only, if given), oldest version first;
        temporary files are not listed."""
        folder = self.folder(kind)
        if not folder.is_dir():
            return []
        found = []
        for item in os.scandir(folder):
            match = _NAME.match(item.name)
            if match and run in (None, match[2]):
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
                f"{path}: damaged model store file, contents do not match the checksum"
            )
        meta = json.loads(meta_json)
        if kind is not None and meta.get("kind") != kind:
            raise StoreError(f"{path}: holds {meta.get('kind')!r}, expected {kind!r}")
        return tensors, meta

    def intact(
        self, entries: Iterable[StoreEntry], kind: Kind
    ) -> Iterator[tuple[StoreEntry, dict[str, torch.Tensor], dict[str, Any]]]:
        """Each of ``entries`` that reads intact, in order, read when asked for.

        A damaged, missing or foreign file is logged (a warning naming it) and
        skipped, so a reader that takes the first one falls back by itself.
        """
        for entry in entries:
            try:
                tensors, meta = self.read(entry, kind)
            except StoreError as exc:
                logger.warning("model store: skipping %s", exc)
                continue
            yield entry, tensors, meta

    def remove(self, entry: StoreEntry) -> None:
        entry.path.unlink(missing_ok=True)

    # --- the live run ------------------------------------------------------------------

    def mark_live(self, run: str) -> None:
        """Name ``run`` the live one: servers follow it from now on."""
        self.path.mkdir(parents=True, exist_ok=True)
        _replace_atomically(self.path / LIVE, lambda tmp: tmp.write_text(f"{run}\n"))

    def live_run(self) -> str | None:
        """The run named live, else the run of the newest snapshot; None in an empty folder."""
        marker = self.path / LIVE
        try:
            run = marker.read_text().strip()
        except FileNotFoundError:
            run = None
        except (OSError, ValueError) as exc:
            logger.warning(
                "model store: %s is unreadable (%s); following the newest snapshot", marker, exc
            )
            run = None
        if run is not None and not _RUN.match(run):
            logger.warning(
                "model store: %s names no run (%r); following the newest snapshot", marker, run[:40]
            )
            run = None
        if run is None:
            snapshots = self.entries("snapshots")
            return snapshots[-1].run if snapshots else None
        return run

    def recovery_points(self, live: str | None) -> list[StoreEntry]:
        """Snapshots to resume from, best first: the ``live`` run's newest first, then
        other runs' (the recovery points a restart keeps), newest version first."""
        snapshots = self.entries("snapshots")
        return sorted(snapshots, key=lambda e: (e.run == live, e.version), reverse=True)

    def signature(self) -> tuple[int, ...]:
        """Modification times of the variant's folder (the live marker) and its three
        folders: unchanged means nothing was published."""
        stamps = []
        for folder in (self.path, *(self.folder(kind) for kind in KINDS)):
            try:
                stamps.append(os.stat(folder).st_mtime_ns)
            except FileNotFoundError:
                stamps.append(0)
        return tuple(stamps)
