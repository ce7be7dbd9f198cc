"""The served copy of one ranker variant: follows the model store without restarting.

``RankerServer(store_root, variant)`` (or a variant's folder alone) loads the newest
snapshot; :meth:`RankerServer.refresh`, which the API calls every few hundred
milliseconds, applies the sparse deltas and dense weights the trainer has
published since, and is one ``stat`` per folder when nothing changed. It loads the
newest snapshot instead when the trainer restarted (a new run) or when pruned
deltas left a gap. A damaged file is refused with :class:`StoreError`; nothing of
it is applied, and the server keeps scoring with what it had.

Scoring and applying updates never interleave (a lock), and files are read before
the lock is taken, so a request waits at most for an in-memory update.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import msgspec

from configs.ranker import RankerSettings
from ranker.codec import core_from_tensors, deltas_from_tensors
from ranker.core import RankerCore
from ranker.errors import StoreError
from ranker.store import ModelStore, StoreEntry
from ranker.types import RankRequest, Scores


@dataclass(frozen=True)
class ModelVersions:
    """What a server is serving, for ``/v1/model``.

    ``lag_s``: seconds since the trainer published the newest update applied here.
    """

    variant: str
    run: str
    snapshot: int
    sparse: int
    dense: int
    step: int
    stage: str
    item_drop_prob: float
    published_at: float
    lag_s: float


class RankerServer:
    """Scores requests with the newest model a variant's store folder holds."""

    def __init__(
        self,
        store: ModelStore | str | os.PathLike[str],
        variant: str | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if isinstance(store, ModelStore):
            self.store = store
        else:
            self.store = ModelStore.open(store, variant) if variant else ModelStore(store)
        self.clock = clock
        self._lock = threading.Lock()  # scoring vs. applying
        self._refreshing = threading.Lock()  # one refresh at a time
        self._signature: tuple[int, ...] | None = None
        snapshots = self.store.entries("snapshots")
        if not snapshots:
            raise StoreError(
                f"{self.store.path}: no snapshot yet; start the trainer (it publishes one at "
                "its first sync) or point at a variant's folder"
            )
        self._load_snapshot(snapshots[-1])
        self.refresh()

    @property
    def settings(self) -> RankerSettings:
        return self.core.settings

    @property
    def tasks(self) -> tuple[str, ...]:
        return self.core.tasks

    def score(self, request: RankRequest, task_weights: Mapping[str, float]) -> Scores:
        """Per-task probabilities (K, T) and weighted scores (K,) of one request's candidates."""
        with self._lock:
            return self.core.score(request, task_weights)

    def versions(self) -> ModelVersions:
        with self._lock:
            warmup = self.core.warmup
            return ModelVersions(
                variant=self.core.settings.variant,
                run=self.run,
                snapshot=self.snapshot_version,
                sparse=self.sparse_version,
                dense=self.dense_version,
                step=self.core.step,
                stage=warmup.stage,
                item_drop_prob=warmup.drop_prob,
                published_at=self.published_at,
                lag_s=max(0.0, self.clock() - self.published_at),
            )

    # --- following the store -------------------------------------------------------------

    def refresh(self) -> bool:
        """Apply what the trainer published since the last call; True if anything changed."""
        with self._refreshing:
            signature = self.store.signature()
            if signature == self._signature:
                return False
            changed = self._follow()
            self._signature = signature
            return changed

    def _follow(self) -> bool:
        snapshots = self.store.entries("snapshots")
        newest = snapshots[-1] if snapshots else None
        changed = False
        if newest is not None and newest.run != self.run:
            self._load_snapshot(newest)
            changed = True
        for entry in self.store.entries("deltas"):
            if entry.run != self.run or entry.version <= self.sparse_version:
                continue
            tensors, meta = self.store.read(entry, "deltas")
            if int(meta["base"]) > self.sparse_version:  # a gap: jump to a snapshot past it
                if newest is None or newest.version <= self.sparse_version:
                    break
                self._load_snapshot(newest)
                changed = True
                if entry.version <= self.sparse_version or int(meta["base"]) > self.sparse_version:
                    continue
            deltas = deltas_from_tensors(tensors, int(meta["base"]), entry.version)
            with self._lock:
                self.core.apply_sparse_delta(deltas, int(meta["step"]))
                self.sparse_version = entry.version
                self._published(meta)
            changed = True
        dense = [
            e
            for e in self.store.entries("dense")
            if e.run == self.run and e.version > self.dense_version
        ]
        if dense:
            tensors, meta = self.store.read(dense[-1], "dense")
            with self._lock:
                self.core.load_dense(tensors, int(meta["step"]))
                self.dense_version = dense[-1].version
                self._published(meta)
            changed = True
        return changed

    def _load_snapshot(self, entry: StoreEntry) -> None:
        tensors, meta = self.store.read(entry, "snapshots")
        try:
            settings = msgspec.convert(meta["settings"], RankerSettings)
        except (KeyError, msgspec.ValidationError) as exc:
            raise StoreError(f"{entry.path}: snapshot settings are unreadable ({exc})") from exc
        core = core_from_tensors(settings, tensors, int(meta["step"]), trainable=False)
        core.version = int(meta["version"])
        with self._lock:
            self.core: RankerCore = core
            self.run = entry.run
            self.snapshot_version = entry.version
            self.sparse_version = int(meta["sparse_version"])
            self.dense_version = int(meta["dense_version"])
            self.published_at = float(meta["published_at"])

    def _published(self, meta: Mapping[str, object]) -> None:
        self.published_at = max(self.published_at, float(meta["published_at"]))
