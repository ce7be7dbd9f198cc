"""The served copy of one ranker variant: follows the model store without restarting.

``RankerServer(store_root, variant)`` (or a variant's folder alone) loads the live
run's newest intact snapshot (:mod:`ranker.store` says which run is live);
:meth:`RankerServer.refresh`, which the API calls every few hundred
milliseconds, applies the newest sparse delta and dense weights that run has
published since, and is one ``stat`` per folder when nothing changed. When another
run becomes live (the trainer restarted), it loads that run's newest intact snapshot.

Damaged files never stop it: a damaged file is skipped with a warning that names
it and nothing of it is applied; the server keeps scoring with what it had and
takes the newest intact file instead. Deltas are cumulative since the run's
snapshot (:mod:`ranker.publisher`), so the next intact delta makes its rows exact
again; one whose snapshot the server has not reached (it missed the delta that
closed the previous snapshot) makes it load that snapshot first. It never starts
on a dead run: with no intact snapshot of the live run it refuses to start
(:class:`StoreError`), and once started it keeps serving what it has until the
live run publishes one.

Scoring and applying updates never interleave (a lock), and files are read before
the lock is taken, so a request waits at most for an in-memory update.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import msgspec
import torch

from configs.ranker import RankerSettings
from ranker.codec import core_from_tensors, deltas_from_tensors
from ranker.core import RankerCore
from ranker.errors import StoreError
from ranker.store import Kind, ModelStore, StoreEntry
from ranker.types import RankRequest, Scores

logger = logging.getLogger(__name__)


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
        live = self.store.live_run()
        if live is None:
            raise StoreError(
                f"{self.store.path}: no snapshot yet; start the trainer (it publishes one at "
                "its first sync) or point at a variant's folder"
            )
        if not self._load_newest_snapshot(reversed(self.store.entries("snapshots", live))):
            raise StoreError(
                f"{self.store.path}: the live run {live} has no intact snapshot (the damaged "
                "ones are logged); the trainer publishes one at its next snapshot or restart"
            )
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
        changed = False
        live = self.store.live_run()
        if live not in (None, self.run):
            if self._load_newest_snapshot(reversed(self.store.entries("snapshots", live))):
                changed = True
            else:
                logger.error(
                    "%s: the live run %s has no intact snapshot yet; still serving run %s",
                    self.store.path,
                    live,
                    self.run,
                )
        applied_delta = self._apply_newest_delta()
        applied_dense = self._apply_newest_dense()
        return changed or applied_delta or applied_dense

    def _newer(
        self, kind: Kind, version: int
    ) -> Iterator[tuple[StoreEntry, dict[str, torch.Tensor], dict[str, Any]]]:
        """This run's intact files of ``kind`` after ``version``, newest first."""
        newer = [e for e in self.store.entries(kind, self.run) if e.version > version]
        return self.store.intact(reversed(newer), kind)

    def _apply_newest_delta(self) -> bool:
        """Bring the rows to the newest intact delta; False if there is none to apply."""
        unreachable = set()  # versions whose snapshot is damaged or gone
        for entry, tensors, meta in self._newer("deltas", self.sparse_version):
            base = int(meta["base"])
            if base > self.sparse_version:  # the rows are short of the delta's snapshot
                at_base = (
                    e for e in self.store.entries("snapshots", self.run) if e.version == base
                )
                if base in unreachable or not self._load_newest_snapshot(at_base):
                    unreachable.add(base)
                    continue
            deltas = deltas_from_tensors(tensors, base, entry.version)
            with self._lock:
                self.core.apply_sparse_delta(deltas, int(meta["step"]))
                self.sparse_version = entry.version
                self._published(meta)
            return True
        return False

    def _apply_newest_dense(self) -> bool:
        """Load the newest intact dense weights; False if there are none to load."""
        for entry, tensors, meta in self._newer("dense", self.dense_version):
            with self._lock:
                self.core.load_dense(tensors, int(meta["step"]))
                self.dense_version = entry.version
                self._published(meta)
            return True
        return False

    def _load_newest_snapshot(self, entries: Iterable[StoreEntry]) -> bool:
        """Load the first intact snapshot of ``entries``; False if none is intact."""
        for entry, tensors, meta in self.store.intact(entries, "snapshots"):
            self._load_snapshot(entry, tensors, meta)
            return True
        return False

    def _load_snapshot(
        self, entry: StoreEntry, tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any]
    ) -> None:
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
