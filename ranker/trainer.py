"""Online incremental training: one optimizer step per mini-batch, in event-time order.

The trainer reads labels from the events (an impression without labels is a
negative), takes one step per ``training.batch_size`` events (Adam for the dense
weights, the row optimizer for the sparse rows), then counts the events in its
engagement counter (so a batch is scored on earlier events' statistics only),
appends the engaged events to its user-history store, evicts expired rows and
counts, and advances the staged ID warmup. It
supports the replay evaluation's progressive validation: ``predict(batch)`` (no
update) and then ``train(batch)``. A run is deterministic for a seed.

Publishing to the model store (:mod:`ranker.publisher`) happens after each
``train`` call when due; :meth:`OnlineTrainer.resume` restarts from the newest
intact snapshot exactly where it left off.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import msgspec
import numpy as np
import torch
from torch.nn.functional import binary_cross_entropy_with_logits

from configs.ranker import RankerSettings
from ranker.codec import (
    as_tensors,
    core_from_tensors,
    core_tensors,
    load_optimizer,
    optimizer_tensors,
    prefixed,
    section,
)
from ranker.core import RankerCore, event_user_side
from ranker.engagement import POSITIVES, EngagementCounter, positive_channels
from ranker.errors import RankerError, StoreError
from ranker.features import TrainStep
from ranker.history import HistoryStore
from ranker.migration import migrate_prefix_rows
from ranker.publisher import Publisher
from ranker.store import ModelStore
from ranker.types import EventBatch, History, RankRequest, Scores

logger = logging.getLogger(__name__)


def task_targets(batch: EventBatch, tasks: tuple[str, ...], quality_watch_s: float) -> np.ndarray:
    """Targets (n, T) float32 from the raw labels: ``quality_watch`` is watch_s >= threshold."""
    positives = positive_channels(batch.labels, len(batch), quality_watch_s)
    return positives[:, [POSITIVES.index(t) for t in tasks]].astype(np.float32)


class OnlineTrainer:
    """Trains one ranker variant on an event stream and publishes it to a model store."""

    def __init__(
        self,
        settings: RankerSettings,
        store: ModelStore | str | os.PathLike[str] | None = None,
        *,
        clock: Callable[[], float] = time.time,
        core: RankerCore | None = None,
    ) -> None:
        self.settings = settings
        self.core = core or RankerCore(settings, trainable=True)
        self.history = HistoryStore(settings.history.length, settings.lucid.levels)
        self.engagement = EngagementCounter(
            settings.engagement, settings.lucid.levels, settings.lucid.codes
        )
        # foreach: one fused update over all ~50 small tensors, half the time of the loop
        self.optimizer = torch.optim.Adam(
            self.core.model.parameters(), lr=settings.training.dense_lr, foreach=True
        )
        self.generator = torch.Generator().manual_seed(settings.training.seed)
        self.clock = clock
        self.event_time = -np.inf
        self._event_seen_at = clock()  # wall time when event_time last moved (or this start)
        self._last_expiry = -np.inf
        # the event log position trained up to (workers.training): saved in each snapshot,
        # so a trainer resumed from one replays the log from exactly there
        self.log_position = 0
        if store is not None and not isinstance(store, ModelStore):
            store = ModelStore(store)
        self.publisher = Publisher(store, settings, clock) if store is not None else None

    @property
    def tasks(self) -> tuple[str, ...]:
        return self.core.tasks

    @property
    def step(self) -> int:
        return self.core.step

    # --- progressive validation ----------------------------------------------------------

    def history_of(self, batch: EventBatch) -> History:
        """The batch's own history, or the one this trainer's stream has built."""
        return batch.history if batch.history is not None else self.history.read(batch.user)

    def with_stats(self, batch: EventBatch) -> EventBatch:
        """The batch with its engagement statistics: its own, or this trainer's counts
        (of the events trained so far) at each event's time."""
        if batch.stats is not None or "stats" not in self.core.features.candidate_names:
            return batch
        return batch.with_stats(self.engagement.features(batch.room, batch.room_lucid, batch.ts))

    def predict(self, batch: EventBatch) -> np.ndarray:
        """Probabilities (n, T) per task, in ``tasks`` order; nothing is updated."""
        return self.core.predict(self.with_stats(batch), self.history_of(batch))

    def score(self, request: RankRequest, task_weights: Mapping[str, float]) -> Scores:
        """Score one request exactly as a :class:`RankerServer` with this state would."""
        return self.core.score(request, task_weights)

    def train(self, batch: EventBatch) -> dict[str, float]:
        """One optimizer step per mini-batch of ``batch`` (sorted by time, stably), then sync."""
        if len(batch) and np.any(np.diff(batch.ts) < 0):
            batch = batch.take(np.argsort(batch.ts, kind="stable"))
        size = self.settings.training.batch_size
        losses = [self._step(batch.take(slice(i, i + size))) for i in range(0, len(batch), size)]
        if self.publisher is not None:
            self.publisher.sync(self)
        return {"steps": len(losses), "loss": float(np.mean(losses)) if losses else float("nan")}

    def _step(self, batch: EventBatch) -> float:
        batch = self.with_stats(batch)  # scored on the counts before this batch
        history = self.history_of(batch)
        now = self._clamped(float(batch.ts.max()), "event time")
        if now > self.event_time:
            self.event_time, self._event_seen_at = now, self.clock()
        warmup = self.core.warmup
        step = TrainStep(
            now=now,
            version=self.core.version + 1,
            drop_prob=warmup.drop_prob if warmup.stage == "id_ramp" else 0.0,
            generator=self.generator,
        )
        self.core.model.train()
        logits, sparse = self.core.logits(event_user_side(batch, history), batch.candidates, step)
        quality = self.settings.tasks.quality_watch_s
        targets = torch.from_numpy(task_targets(batch, self.tasks, quality))
        loss = binary_cross_entropy_with_logits(logits, targets)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        sparse.apply(step.version)
        self.core.step += 1
        self.core.version = step.version
        positives = positive_channels(batch.labels, len(batch), quality)
        self.engagement.add(batch.ts, batch.room, batch.room_lucid, positives)
        keep = positives.any(axis=1)  # engagements enter the user's history
        if keep.any():
            self.history.append(batch.user[keep], batch.room_lucid[keep], batch.ts[keep])
        self._expire(now)
        self.core.retire_item_table()
        return float(loss.detach())

    def expire_idle(self) -> None:
        """Expiry while no events arrive (maintenance calls this between batches).

        The event clock runs on at wall speed from the last event it saw, so a row
        untouched for ``ttl`` still goes when the stream is quiet. A backfill of old
        events is safe: its newest event was seen moments ago, so the clock barely
        moves; downtime before a restart does not count either.
        """
        if np.isfinite(self.event_time):
            self._expire(self.event_time + max(0.0, self.clock() - self._event_seen_at))

    def _clamped(self, event_time: float, what: str) -> float:
        """``event_time``, or wall time + ``max_clock_skew_s`` if later (with a warning).

        The event clock decides expiry: one event stamped in milliseconds would move it
        57,000 years ahead and the next expiry would evict every row and history.
        """
        wall = self.clock()
        ceiling = wall + self.settings.max_clock_skew_s
        if event_time <= ceiling:
            return event_time
        logger.warning(
            "%s %.0f is %.0f s past the wall clock; the event clock stops at %.0f "
            "(ranker.max_clock_skew_s)",
            what,
            event_time,
            event_time - wall,
            ceiling,
        )
        return ceiling

    def _expire(self, now: float) -> None:
        """Evict expired rows and histories, every ``expire_every_s`` of event time."""
        spec = self.settings.sparse
        if now - self._last_expiry < spec.expire_every_s:
            return
        if np.isfinite(self._last_expiry):
            for table in self.core.tables.values():
                table.evict(now, self.core.version)
            self.history.forget_before(now - spec.ttl_s)
            self.engagement.forget_before(now - spec.ttl_s)
        self._last_expiry = now

    # --- publishing ----------------------------------------------------------------------

    def _publisher(self) -> Publisher:
        if self.publisher is None:
            raise RankerError("this trainer has no model store; pass store= to publish")
        return self.publisher

    def sync(self) -> list[Path]:
        """Publish what is due now (``train`` calls this; call it when the stream is idle)."""
        return self._publisher().sync(self)

    def publish_delta(self) -> Path | None:
        """Publish the rows changed since the last delta now."""
        return self._publisher().delta(self)

    def publish_dense(self) -> Path | None:
        """Publish the dense weights now."""
        return self._publisher().dense(self)

    def save_snapshot(self) -> list[Path]:
        """Publish a delta, the dense weights and a full snapshot now."""
        return self._publisher().snapshot(self)

    # --- codebook migration --------------------------------------------------------------

    def migrate_codes(
        self,
        table: str,
        old_codes: np.ndarray,
        new_codes: np.ndarray,
        counts: np.ndarray | None = None,
    ) -> int:
        """After a quantizer retrain: new prefix rows of ``table`` ("room" or "slice") start from
        the count-weighted mean of the old rows (see :func:`ranker.migration.migrate_prefix_rows`).
        """
        if table not in self.core.features.keys or table not in self.core.tables:
            raise RankerError(f"no LUCID table {table!r} in this variant; use 'room' or 'slice'")
        self.core.version += 1
        return migrate_prefix_rows(
            self.core.tables[table],
            self.core.features.keys[table],
            old_codes,
            new_codes,
            counts,
            version=self.core.version,
            now=self.event_time,
        )

    def stats(self) -> dict[str, object]:
        """Table sizes, evictions, filtered lookups, warmup stage and drop probability, step."""
        out = self.core.stats() | {
            "history_users": len(self.history),
            "event_time": self.event_time,
        }
        if self.publisher is not None:
            out["published"] = self.publisher.versions()
        return out

    # --- snapshots -----------------------------------------------------------------------

    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, object]]:
        """Everything needed to resume exactly: tensors and JSON meta."""
        adam, param_groups = optimizer_tensors(self.optimizer)
        tensors = core_tensors(self.core) | prefixed("adam", adam)
        tensors |= prefixed("history", as_tensors(self.history.state_arrays()))
        tensors |= prefixed("engagement", as_tensors(self.engagement.state_arrays()))
        tensors["rng"] = self.generator.get_state()
        meta = {
            "settings": msgspec.to_builtins(self.settings),
            "step": self.core.step,
            "version": self.core.version,
            "event_time": self.event_time,
            "last_expiry": self._last_expiry,
            "log_position": self.log_position,
            "adam": param_groups,
        }
        return tensors, meta

    @classmethod
    def from_state(
        cls,
        tensors: Mapping[str, torch.Tensor],
        meta: Mapping[str, object],
        store: ModelStore | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> OnlineTrainer:
        settings = msgspec.convert(meta["settings"], RankerSettings)
        core = core_from_tensors(settings, tensors, int(meta["step"]), trainable=True)
        core.version = int(meta["version"])
        trainer = cls(settings, store, clock=clock, core=core)
        load_optimizer(trainer.optimizer, section("adam", tensors), meta["adam"])
        arrays = {k: v.numpy() for k, v in section("history", tensors).items()}
        trainer.history = HistoryStore.from_state_arrays(arrays)
        engagement = {k: v.numpy() for k, v in section("engagement", tensors).items()}
        trainer.engagement.load_state_arrays(engagement)
        trainer.generator.set_state(tensors["rng"])
        trainer.event_time = float(meta["event_time"])
        trainer._last_expiry = float(meta["last_expiry"])
        trainer.log_position = int(meta.get("log_position", 0))  # 0: a snapshot from before
        return trainer

    @classmethod
    def resume(
        cls,
        store: ModelStore | str | os.PathLike[str],
        *,
        clock: Callable[[], float] = time.time,
    ) -> OnlineTrainer:
        """A trainer that goes on from the newest intact snapshot in ``store`` (a variant's
        folder): the live run's newest, else an older one (each damaged one is logged by
        name and skipped), else another run's (see :meth:`ModelStore.recovery_points`).

        The files the previous run wrote after that snapshot are removed, and the
        snapshot is republished under this run's id, so servers follow the new run.
        An event clock saved past wall time + ``max_clock_skew_s`` is set back to it.
        """
        store = store if isinstance(store, ModelStore) else ModelStore(Path(store))
        found = next(store.intact(store.recovery_points(store.live_run()), "snapshots"), None)
        if found is None:
            raise StoreError(
                f"{store.path}: no snapshot to resume from (none, or every one is damaged); "
                "start a new trainer"
            )
        entry, tensors, meta = found
        trainer = cls.from_state(tensors, meta, store, clock=clock)
        trainer.event_time = trainer._clamped(trainer.event_time, "the snapshot's event time")
        trainer._last_expiry = min(trainer._last_expiry, trainer.event_time)
        assert trainer.publisher is not None
        trainer.publisher.restart(trainer, entry)
        return trainer
