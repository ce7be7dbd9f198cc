"""Publishing a trainer to the model store on Monolith's cadence.

Sparse deltas every ``sync.sparse_interval_s``, dense weights every
``sync.dense_interval_s``, a full snapshot every ``snapshot.interval_s`` (wall
clock). A snapshot is published together with a delta and dense weights of the
same version, so a server that follows the deltas reaches it without reading it.

**Cumulative deltas.** Each delta holds every row changed (and every key evicted)
since this run's newest snapshot, its ``base``, not since the previous delta. So
any one intact delta brings a server that is at ``base`` or later exactly to the
trainer's rows at the delta's version: a damaged delta costs a server nothing but
the wait for the next one (one sparse interval), where a chain of incremental
deltas would stop at the damaged link until the next snapshot. The price is size:
a delta grows with the rows touched since the snapshot, up to the table's rows in
use (the snapshot's rows without optimizer state, ``snapshot.interval_s`` bounds
it), instead of those touched in one interval.

Servers read only the newest intact delta and dense file of the live run, so each
publish keeps the newest :data:`UPDATES_KEPT` of its kind (the older ones are the
fallback while the newest is damaged), and the delta that closed the previous
snapshot, and removes other runs'. After a snapshot,
the newest ``snapshot.keep`` snapshots are kept, this run's before other runs'
(see :meth:`ranker.store.ModelStore.recovery_points`). A run names itself live
(:meth:`ranker.store.ModelStore.mark_live`) once its first snapshot is on disk.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from configs.ranker import RankerSettings
from ranker.codec import delta_tensors
from ranker.store import KINDS, Kind, ModelStore, StoreEntry

if TYPE_CHECKING:
    from ranker.trainer import OnlineTrainer

UPDATES_KEPT = 3  # deltas and dense files kept per kind: the newest and two fallbacks


class Publisher:
    """Writes one trainer run's deltas, dense weights and snapshots into a variant's folder."""

    def __init__(
        self, store: ModelStore, settings: RankerSettings, clock: Callable[[], float]
    ) -> None:
        self.store, self.settings, self.clock = store, settings, clock
        self.run = secrets.token_hex(4)
        self.sparse_version = 0  # version of the last delta: nothing new while at it
        self.dense_version = -1
        self.snapshot_version = -1
        self._last = {kind: float("-inf") for kind in KINDS}

    @property
    def base(self) -> int:
        """The version every delta starts from: this run's newest snapshot (0 before one)."""
        return max(self.snapshot_version, 0)

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
        """The rows changed since this run's snapshot; None when nothing changed since the
        last delta."""
        now, version = self.clock(), trainer.core.version
        self._last["deltas"] = now
        if version <= self.sparse_version:
            return None
        deltas = trainer.core.sparse_delta(self.base)
        meta = self._meta(trainer, now) | {"base": self.base}
        path = self.store.write("deltas", version, self.run, delta_tensors(deltas), meta)
        self.sparse_version = version
        self._prune_updates("deltas")
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
        self._prune_updates("dense")
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
            if self.snapshot_version < 0:
                self.store.mark_live(self.run)
            self.snapshot_version = version
            self._prune_snapshots()
        return [path for path in written if path is not None]

    def restart(self, trainer: OnlineTrainer, resumed: StoreEntry) -> None:
        """Take over from the run that wrote ``resumed``.

        Files of a version after it are abandoned (or damaged: it is the newest intact
        one), so they go; the snapshot is republished under this run, which names
        itself live, so that servers switch to it. Older snapshots stay as recovery
        points; other runs' deltas and dense files go with this run's first ones.
        """
        for kind in KINDS:
            for entry in self.store.entries(kind):
                if entry.version > resumed.version:
                    self.store.remove(entry)
        self.sparse_version = self.dense_version = resumed.version
        self.snapshot(trainer)
        if resumed.run != self.run:
            self.store.remove(resumed)

    def _prune_updates(self, kind: Kind) -> None:
        """Keep this run's newest :data:`UPDATES_KEPT` files of ``kind``, no other run's.

        The delta that closed the previous snapshot stays too: through it, a server
        that can read only that snapshot (the newest is damaged) reaches the newest.
        """
        kept = set(self.store.entries(kind, self.run)[-UPDATES_KEPT:])
        for entry in self.store.entries(kind):
            closing = kind == "deltas" and entry.run == self.run and entry.version == self.base
            if entry not in kept and not closing:
                self.store.remove(entry)

    def _prune_snapshots(self) -> None:
        """Keep the newest ``snapshot.keep`` snapshots, this run's first."""
        for entry in self.store.recovery_points(self.run)[self.settings.snapshot.keep :]:
            self.store.remove(entry)
