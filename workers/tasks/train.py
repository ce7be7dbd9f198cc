"""The train queue: the event log -> every ranker variant in use, published to the model store.

This queue has exactly one consumer (a solo-pool worker holding the trainer
lease), so the trainers live in this process's memory: one
:class:`ranker.OnlineTrainer` per ranker variant that the default settings or a
live experiment uses, each trained on all events. A trainer resumes from its
variant's newest snapshot when the worker starts, and publishes sparse deltas,
dense weights and snapshots on the ranker's sync cadence.

**The log is the input, a task only a wake-up.** Accepted events are in the
catalog's event log (:mod:`workers.catalog.eventlog`), appended by the API in
the transaction that records them as received. ``lucidrec.train.events`` means
"train every variant from its log position to the log's end"
(:mod:`workers.training`), so it is idempotent by log position: a task
redelivered, sent twice, or sent for events an earlier task already trained
trains nothing twice, and a trainer restarted from a snapshot replays exactly
the events after it. The API sends one after each append; the train worker
sends itself one when it starts (:mod:`workers.runner`) and ``maintain`` drains
too, so a lost wake-up delays training by a maintenance interval at most. A
task may carry events (the demo seed, tools): they are appended first, as the
API appends them. A new variant's trainer starts at position 0: it trains on
what the log still holds.

**Bounding the log.** ``maintain`` deletes the log up to the lowest position a
restart could resume any variant from (its oldest snapshot on disk), and the
parked events resolved by then. Positions of snapshots written before this
process started are unknown to it, so nothing is pruned until each variant's
recovery points are all this process's.

Events on rooms without codes wait for them (:mod:`workers.parking`); events
that cannot be trained become dead letters. A training step that fails for a
batch as a whole is no one event's fault: the trainer, its state now half a
chunk, is dropped from memory, so the next task resumes it from its snapshot,
and the task fails with the error. A catalog error before training leaves the
trainer as it was, and a transient one is retried.

When the active codebook changes, every trainer migrates its LUCID prefix rows
from the old codes to the new ones before training on the new codes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
from celery import shared_task
from celery.signals import worker_shutdown

from configs import Settings, WatchedExperiments
from ranker import ModelStore, OnlineTrainer, StoreError
from workers.catalog import Catalog
from workers.messages import EventMessage
from workers.metrics import TrainMetrics
from workers.tasks.base import LucidrecTask
from workers.training import Chunk, train_chunk

logger = logging.getLogger(__name__)
CODEBOOK_STATE = "ranker_codebook_version"


class TrainerPool:
    """The process's trainers, one per ranker variant in use, shared by every train task."""

    def __init__(self, settings: Settings, catalog: Catalog) -> None:
        self.settings = settings
        self.catalog = catalog
        self.watched = WatchedExperiments(settings.experiments_file, settings)
        self.trainers: dict[str, OnlineTrainer] = {}
        # per variant: the log position each snapshot (version, run) this process saw covers
        self.covered: dict[str, dict[tuple[int, str], int]] = {}
        self.metrics = TrainMetrics()
        for variant, count in catalog.parked_counts().items():
            self.metrics.parked.labels(variant).set(count)
        if settings.workers.metrics_port is not None:
            self.metrics.serve(settings.workers.metrics_port)

    def variants(self) -> list[str]:
        return sorted(self.watched.ranker_variants())

    def trainer(self, variant: str) -> OnlineTrainer:
        """The variant's trainer: resumed from its newest snapshot, or new (and snapshotted)."""
        found = self.trainers.get(variant)
        if found is None:
            store = ModelStore.open(Path(self.settings.model_store) / "ranker", variant)
            try:
                found = OnlineTrainer.resume(store)
                logger.info("trainer %s resumed at step %d", variant, found.step)
            except StoreError:
                ranker = msgspec.structs.replace(self.settings.ranker, variant=variant)
                found = OnlineTrainer(ranker, store)
                found.save_snapshot()  # servers can load the variant before any training
                logger.info("trainer %s started fresh", variant)
            self.catalog.rewind_parked(variant, found.log_position)
            self.trainers[variant] = found
            self.note_snapshot(variant)
        return found

    def note_snapshot(self, variant: str) -> None:
        """Remember the log position of the variant's newest snapshot; call it after anything
        that may have written one, before the trainer's position moves on."""
        trainer = self.trainers[variant]
        assert trainer.publisher is not None
        key = (trainer.publisher.snapshot_version, trainer.publisher.run)
        self.covered.setdefault(variant, {}).setdefault(key, trainer.log_position)

    def resumable_from(self, variant: str) -> int | None:
        """The lowest log position a restart could resume ``variant`` from (its oldest
        snapshot on disk); None while a snapshot's position is unknown to this process."""
        trainer = self.trainers[variant]
        assert trainer.publisher is not None
        covered = self.covered.get(variant, {})
        positions = [
            covered.get((e.version, e.run)) for e in trainer.publisher.store.entries("snapshots")
        ]
        if not positions or None in positions:
            return None
        return min(p for p in positions if p is not None)

    def drain(self) -> DrainReport:
        """Train every variant in use from its log position to the log's end (as of now)."""
        variants = self.variants()
        for variant in variants:
            self.trainer(variant)
        self.follow_codebook()
        head = self.catalog.log_head()
        self.metrics.log_head.set(head)
        report = DrainReport()
        for variant in variants:
            while (trainer := self.trainer(variant)).log_position < head:
                self.note_snapshot(variant)  # one written since (at shutdown, say)
                position = trainer.log_position
                try:
                    chunk = train_chunk(self.catalog, variant, trainer, head, self.settings.workers)
                except Exception:
                    if trainer.log_position != position:  # it failed training, half-way
                        self.trainers.pop(variant, None)  # resume from the snapshot next time
                    raise
                self.note_snapshot(variant)
                report.add(variant, chunk)
                self._observe(variant, chunk)
            report.steps[variant] = trainer.step
            report.positions[variant] = trainer.log_position
        return report

    def prune(self) -> int:
        """Delete the log below every variant's oldest snapshot on disk, and each variant's
        parked events resolved by its oldest snapshot; returns the log entries deleted."""
        bounds = {}
        for variant in self.variants():
            self.trainer(variant)
            bounds[variant] = self.resumable_from(variant)
        for variant, bound in bounds.items():
            if bound is not None:
                self.catalog.forget_parked(variant, bound)
        if not bounds or None in bounds.values():
            return 0
        return self.catalog.prune_log(min(b for b in bounds.values() if b is not None))

    def _observe(self, variant: str, chunk: Chunk) -> None:
        m = self.metrics
        m.parked.labels(variant).set(chunk.parked)
        m.parked_dropped.labels(variant, "age").inc(chunk.too_old)
        m.parked_dropped.labels(variant, "count").inc(chunk.too_many)
        m.dead_letters.labels(variant).inc(len(chunk.dead))
        m.trained.labels(variant).inc(chunk.trained)
        m.log_position.labels(variant).set(chunk.position)
        if chunk.too_old or chunk.too_many:
            logger.warning(
                "%s: dropped %d parked events past workers.parked_max_age_s and %d past "
                "workers.parked_max_events",
                variant,
                chunk.too_old,
                chunk.too_many,
            )
        for letter in chunk.dead:
            logger.warning(
                "%s: event %s (log position %d) is a dead letter: %s",
                variant,
                letter.event_id,
                letter.position,
                letter.reason,
            )

    def follow_codebook(self) -> None:
        """Migrate every trainer's prefix rows if the active codebook changed since last seen."""
        active = self.catalog.active_codebook()
        if active is None:
            return
        lucid = self.settings.ranker.lucid
        if (active.levels, active.codes) != (lucid.levels, lucid.codes):
            raise ValueError(
                f"active codebook {active.version} is L={active.levels} N={active.codes}, the "
                f"ranker expects L={lucid.levels} N={lucid.codes}: set ranker.lucid to match"
            )
        seen = self.catalog.get_state(CODEBOOK_STATE)
        if seen is not None and seen != active.version:
            for variant, trainer in self.trainers.items():
                for table in ("room", "slice"):
                    old, new, counts = self.catalog.code_pairs(table, seen, active.version)
                    if len(old) and table in trainer.core.tables:
                        rows = trainer.migrate_codes(table, old, new, counts)
                        logger.info(
                            "%s: migrated %d %s prefix rows to codebook %s",
                            variant,
                            rows,
                            table,
                            active.version,
                        )
        if seen != active.version:
            self.catalog.set_state(CODEBOOK_STATE, active.version)


@dataclass
class DrainReport:
    """What a drain did, over every variant."""

    trained: dict[str, int] = field(default_factory=dict)
    released: set[str] = field(default_factory=set)
    dropped: int = 0
    dead_letters: set[str] = field(default_factory=set)
    parked: dict[str, int] = field(default_factory=dict)
    steps: dict[str, int] = field(default_factory=dict)
    positions: dict[str, int] = field(default_factory=dict)

    def add(self, variant: str, chunk: Chunk) -> None:
        self.trained[variant] = self.trained.get(variant, 0) + chunk.trained
        self.released.update(chunk.released)
        self.dropped += chunk.too_old + chunk.too_many
        self.dead_letters.update(d.event_id for d in chunk.dead)
        self.parked[variant] = chunk.parked


_POOL: TrainerPool | None = None


class TrainTask(LucidrecTask):
    """Train tasks share the process-wide :class:`TrainerPool`."""

    abstract = True

    @property
    def pool(self) -> TrainerPool:
        global _POOL
        if _POOL is None:
            _POOL = TrainerPool(self.settings, self.catalog)
        return _POOL


@shared_task(bind=True, base=TrainTask, name="lucidrec.train.events")
def train_events(self: TrainTask, events: list[Any] | None = None) -> dict[str, Any]:
    """Train every variant in use from the event log up to its end; ``events``, if given, are
    appended to the log first (those received before are duplicates). Returns what it did:
    ``trained`` is the most events any variant trained, ``parked`` each variant's count
    held, ``log_position`` and ``steps`` each variant's after it."""
    appended, duplicates, invalid = 0, 0, []
    if events is not None:
        if not isinstance(events, list):
            raise TypeError("train_events takes a JSON array of event objects")
        parsed = {}
        for index, raw in enumerate(events):
            try:
                event = msgspec.convert(raw, EventMessage)
                parsed[event.event_id] = msgspec.json.encode(event).decode()
            except msgspec.ValidationError as exc:
                invalid.append({"index": index, "reason": str(exc)})
        appended = len(self.catalog.append_events(parsed))
        duplicates = len(events) - len(invalid) - appended
    report = self.pool.drain()
    return {
        "appended": appended,
        "duplicates": duplicates,
        "invalid": invalid,
        "trained": max(report.trained.values(), default=0),
        "released": sorted(report.released),
        "dropped": report.dropped,
        "dead_letters": sorted(report.dead_letters),
        "parked": report.parked,
        "log_position": report.positions,
        "steps": report.steps,
    }


@shared_task(bind=True, base=TrainTask, name="lucidrec.train.maintain")
def maintain(self: TrainTask, publish_now: bool = False) -> dict[str, Any]:
    """Train what the log holds (a lost wake-up), expire idle rows, publish what is due
    (deltas, dense weights, snapshots) while the event stream is idle, and prune the log;
    ``publish_now`` publishes the sparse delta and the dense weights at once, whatever the
    cadence (the demo seed uses it, so its first ranking is trained)."""
    pool = self.pool
    pool.drain()
    published = {}
    for variant in pool.variants():
        trainer = pool.trainer(variant)
        trainer.expire_idle()
        files = trainer.sync()
        if publish_now:
            files += [p for p in (trainer.publish_delta(), trainer.publish_dense()) if p]
        pool.note_snapshot(variant)
        published[variant] = [p.name for p in files]
    return {"published": published, "pruned": pool.prune()}


@worker_shutdown.connect
def snapshot_on_shutdown(**_: object) -> None:
    """A warm shutdown writes every trainer's snapshot, so a planned restart loses nothing."""
    if _POOL is not None:
        for variant, trainer in _POOL.trainers.items():
            trainer.save_snapshot()
            _POOL.note_snapshot(variant)
            logger.info("trainer %s: snapshot at step %d on shutdown", variant, trainer.step)
