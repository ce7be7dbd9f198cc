"""Publishing a trainer to the model store on Monolith's cadence.

Sparse deltas every ``sync.sparse_interval_s``, dense weights every
``sync.dense_interval_s``, a full snapshot every ``snapshot.interval_s`` (wall
clock). A snapshot is published together with a delta and dense weights of the
same version, so a server's delta chain never breaks at a snapshot. Each delta holds
the rows changed since the previous delta (its ``base``), so a server applies them
in order; a server that finds a gap loads the newest snapshot instead. After a
snapshot, only the newest ``snapshot.keep`` snapshots and the deltas and dense
files from the oldest kept one on are kept.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from configs.ranker import RankerSettings
from ranker.codec import delta_tensors
from ranker.store import KINDS, ModelStore, StoreEntry

if TYPE_CHECKING:
    from ranker.trainer import OnlineTrainer


class Publisher:
    """Writes one trainer run's deltas, dense weights and snapshots into a variant's folder."""

    def __init__(
        self, store: ModelStore, settings: RankerSettings, clock: Callable[[], float]
    ) -> None:
        self.store, self.settings, self.clock = store, settings, clock
        self.run = secrets.token_hex(4)
        self.sparse_version = 0  # version of the last delta: the base of the next one
        self.dense_version = -1
        self.snapshot_version = -1
        self._last = {kind: float("-inf") for kind in KINDS}

    def versions(self) -> dict[str, object]:
        return {
            "run": self.run,
            "snapshot": self.snapshot_version,
            "sparse": self.sparse_version,
            "dense": self.dense_version,
        }

    def sync(self, trainer: OnlineTrainer) -> list[Path]:
        """Publish whatever is due now."""
        now = self.clock()
        if now - self._last["snapshots"] >= self.settings.snapshot.interval_s:
            return self.snapshot(trainer)
        written = []
        if now - self._last["deltas"] >= self.settings.sync.sparse_interval_s:
            written.append(self.delta(trainer))
        if now - self._last["dense"] >= self.settings.sync.dense_interval_s:
            written.append(self.dense(trainer))
        return [path for path in written if path is not None]

    def _meta(self, trainer: OnlineTrainer, now: float) -> dict[str, object]:
        return {
            "run": self.run,
            "step": trainer.core.step,
            "version": trainer.core.version,
            "event_time": trainer.event_time,
            "published_at": now,
        }

    def delta(self, trainer: OnlineTrainer) -> Path | None:
        """The rows changed since the last delta; None when nothing changed since."""
        now, version = self.clock(), trainer.core.version
        self._last["deltas"] = now
        if version <= self.sparse_version:
            return None
        deltas = trainer.core.sparse_delta(self.sparse_version)
        meta = self._meta(trainer, now) | {"base": self.sparse_version}
        path = self.store.write("deltas", version, self.run, delta_tensors(deltas), meta)
        self.sparse_version = version
        return path

    def dense(self, trainer: OnlineTrainer) -> Path | None:
        """The dense weights; None when they have not changed since the last ones."""
        now, version = self.clock(), trainer.core.version
        self._last["dense"] = now
        if version <= self.dense_version:
            return None
        state = trainer.core.model.state_dict()
        path = self.store.write("dense", version, self.run, state, self._meta(trainer, now))
        self.dense_version = version
        return path

    def snapshot(self, trainer: OnlineTrainer) -> list[Path]:
        """A delta, dense weights and a full snapshot of the same version; then old files go."""
        written = [self.delta(trainer), self.dense(trainer)]
        now, version = self.clock(), trainer.core.version
        self._last["snapshots"] = now
        if version > self.snapshot_version:
            tensors, meta = trainer.state()
            meta |= self._meta(trainer, now) | {
                "sparse_version": self.sparse_version,
                "dense_version": self.dense_version,
            }
            written.append(self.store.write("snapshots", version, self.run, tensors, meta))
            self.snapshot_version = version
            self._prune()
        return [path for path in written if path is not None]

    def restart(self, trainer: OnlineTrainer, resumed: StoreEntry) -> None:
        """Take over from the run that wrote ``resumed``.

        The old run's later files are abandoned and its deltas and dense files are
        useless to servers of this run, so they go; the snapshot is republished under
        this run so that servers switch to it. Older snapshots stay as recovery points.
        """
        for kind in KINDS:
            for entry in self.store.entries(kind):
                if entry.version > resumed.version or (
                    kind != "snapshots" and entry.run != self.run
                ):
                    self.store.remove(entry)
        self.sparse_version = self.dense_version = resumed.version
        self.snapshot(trainer)
        if resumed.run != self.run:
            self.store.remove(resumed)

    def _prune(self) -> None:
        snapshots = self.store.entries("snapshots")
        keep = snapshots[-self.settings.snapshot.keep :]
        for entry in snapshots[: -len(keep)]:
            self.store.remove(entry)
        oldest = keep[0].version
        for kind in ("deltas", "dense"):
            for entry in self.store.entries(kind):
                if entry.version < oldest:
                    self.store.remove(entry)
