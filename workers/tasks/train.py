"""The train queue: events -> every ranker variant in use, published to the model store.

This queue has exactly one consumer (a solo-pool worker holding the trainer
lease), so the trainers live in this process's memory: one
:class:`ranker.OnlineTrainer` per ranker variant that the default settings or a
live experiment uses, each trained on all events. A trainer resumes from its
variant's newest snapshot when the worker starts, and publishes sparse deltas,
dense weights and snapshots on the ranker's sync cadence.

Events on rooms without codes cannot be trained on; each trainer still counts
them in its engagement statistics, at the room level, as the API counts them
(:mod:`api.serving.engagement`), so a room's statistics and the all-rooms row
are the same on both sides.

Events are idempotent by ``event_id`` (the catalog's processed ledger, marked
after training). When the active codebook changes, every trainer migrates its
LUCID prefix rows from the old codes to the new ones before training on the
new codes.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
from celery import shared_task
from celery.signals import worker_shutdown

from configs import Settings, WatchedExperiments
from ranker import EventBatch, ModelStore, OnlineTrainer, StoreError, id_keys, positive_channels
from workers.catalog import Catalog
from workers.events import build_batch, event_labels
from workers.messages import EventMessage
from workers.tasks.base import LucidrecTask

logger = logging.getLogger(__name__)
CODEBOOK_STATE = "ranker_codebook_version"


class TrainerPool:
    """The process's trainers, one per ranker variant in use, shared by every train task."""

    def __init__(self, settings: Settings, catalog: Catalog) -> None:
        self.settings = settings
        self.catalog = catalog
        self.watched = WatchedExperiments(settings.experiments_file, settings)
        self.trainers: dict[str, OnlineTrainer] = {}

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
            self.trainers[variant] = found
        return found

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


def train_variant(
    trainer: OnlineTrainer, batch: EventBatch | None, skipped: Sequence[EventMessage]
) -> None:
    """Train on ``batch``, then count the ``skipped`` events (rooms without codes) for their
    rooms and all rooms, as the API counts them."""
    if batch is not None:
        trainer.train(batch)
    if skipped:
        quality_watch_s = trainer.settings.tasks.quality_watch_s
        trainer.engagement.add(
            np.array([e.ts for e in skipped], dtype=np.float64),
            id_keys([e.room_id for e in skipped]),
            None,
            positive_channels(event_labels(skipped), len(skipped), quality_watch_s),
        )


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
def train_events(self: TrainTask, events: list[Any]) -> dict[str, Any]:
    """Train every variant in use on ``events``; returns counts and each trainer's step."""
    if not isinstance(events, list):
        raise TypeError("train_events takes a JSON array of event objects")
    parsed, invalid = [], []
    for index, raw in enumerate(events):
        try:
            parsed.append(msgspec.convert(raw, EventMessage))
        except msgspec.ValidationError as exc:
            invalid.append({"index": index, "reason": str(exc)})
    fresh_ids = set(self.catalog.unprocessed("event", [e.event_id for e in parsed]))
    fresh = list({e.event_id: e for e in parsed if e.event_id in fresh_ids}.values())
    pool = self.pool
    variants = pool.variants()
    for variant in variants:
        pool.trainer(variant)
    pool.follow_codebook()
    batch, skipped = build_batch(self.catalog, self.settings.ranker, fresh)
    steps = {}
    for variant in variants:
        trainer = pool.trainer(variant)
        train_variant(trainer, batch, skipped)
        steps[variant] = trainer.step
    self.catalog.mark_processed("event", [e.event_id for e in fresh])
    return {
        "trained": 0 if batch is None else len(batch),
        "duplicates": len(parsed) - len(fresh),
        "skipped_no_codes": [e.event_id for e in skipped],
        "invalid": invalid,
        "steps": steps,
    }


@shared_task(bind=True, base=TrainTask, name="lucidrec.train.maintain")
def maintain(self: TrainTask, publish_now: bool = False) -> dict[str, Any]:
    """Expire idle rows and publish what is due (deltas, dense weights, snapshots) while the
    event stream is idle; ``publish_now`` publishes the sparse delta and the dense weights
    at once, whatever the cadence (the demo seed uses it, so its first ranking is trained)."""
    published = {}
    for variant in self.pool.variants():
        trainer = self.pool.trainer(variant)
        trainer.expire_idle()
        files = trainer.sync()
        if publish_now:
            files += [p for p in (trainer.publish_delta(), trainer.publish_dense()) if p]
        published[variant] = [p.name for p in files]
    return {"published": published}


@worker_shutdown.connect
def snapshot_on_shutdown(**_: object) -> None:
    """A warm shutdown writes every trainer's snapshot, so a planned restart loses nothing."""
    if _POOL is not None:
        for variant, trainer in _POOL.trainers.items():
            trainer.save_snapshot()
            logger.info("trainer %s: snapshot at step %d on shutdown", variant, trainer.step)
