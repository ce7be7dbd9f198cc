"""One ranker variant's trainer takes the event log a chunk at a time, each event once.

A trainer knows the log position it has trained up to (``trainer.log_position``,
saved in every snapshot). A chunk is the log after that position, up to
``workers.train_chunk_events`` events, plus the events this variant holds
parked (:mod:`workers.parking`). For a chunk ending at position ``Q`` the
trainer, in this order:

1. decodes and builds the events (:mod:`workers.events`); an event it cannot
   read or build features for fails alone, as a dead letter with its reason;
2. decides what waits for codes (new events on rooms without codes, parked
   ones still without), what trains (the rest, parked ones whose rooms have
   codes now) and what is dropped past the parking bounds;
3. records those decisions in the catalog, marked with ``Q``, in one
   transaction;
4. sets ``log_position = Q``, counts the dropped events, and trains the batch,
   after which (never before) the publisher may write a snapshot.

A snapshot therefore covers whole chunks: it holds exactly the events up to
its ``log_position`` that were trained or dropped, and the parked rows marked
up to that position. A trainer that dies anywhere in between (SIGKILL
included) loses only state after its newest snapshot; on resume the parked
rows go back to that position (:meth:`workers.catalog.Catalog.rewind_parked`)
and the log is replayed from it, so each accepted event is trained once
relative to the model state restored, however often it is replayed.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import msgspec
import numpy as np

from configs import WorkerSettings
from ranker import EventBatch, OnlineTrainer, id_keys, positive_channels
from workers.catalog import Catalog, DeadLetter, LogEntry
from workers.events import build_batch, event_labels, failure
from workers.messages import EventMessage
from workers.parking import Logged, apply_bounds


def train_variant(
    trainer: OnlineTrainer, batch: EventBatch | None, uncoded: Sequence[EventMessage]
) -> None:
    """Count the ``uncoded`` events (rooms without codes, dropped from parking) for their
    rooms and all rooms, as the API counts them, then train on ``batch``.

    The counts come first so that a snapshot written after the training step holds them.
    """
    if uncoded:
        quality_watch_s = trainer.settings.tasks.quality_watch_s
        trainer.engagement.add(
            np.array([e.ts for e in uncoded], dtype=np.float64),
            id_keys([e.room_id for e in uncoded]),
            None,
            positive_channels(event_labels(uncoded), len(uncoded), quality_watch_s),
        )
    if batch is not None:
        trainer.train(batch)


def decoded(entries: Sequence[LogEntry]) -> tuple[list[Logged], list[DeadLetter]]:
    """The entries whose events this version reads, and dead letters for the others (an
    entry written by another version of the API, say)."""
    good, dead = [], []
    for entry in entries:
        try:
            good.append(Logged(entry, msgspec.json.decode(entry.payload, type=EventMessage)))
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
            dead.append(DeadLetter(entry.position, entry.event_id, failure(exc), entry.payload))
    return good, dead


@dataclass
class Chunk:
    """What one chunk did for one variant."""

    position: int  # the trainer's log position after it
    trained: int = 0
    parked: int = 0  # events held parked after it
    released: list[str] = field(default_factory=list)  # parked events trained now
    too_old: int = 0
    too_many: int = 0
    dead: list[DeadLetter] = field(default_factory=list)


def train_chunk(
    catalog: Catalog,
    variant: str,
    trainer: OnlineTrainer,
    head: int,
    settings: WorkerSettings,
    now: float | None = None,
) -> Chunk:
    """Train ``trainer`` on the next chunk of the log (up to ``head``) and its parked events."""
    now = time.time() if now is None else now
    limit = settings.train_chunk_events
    entries = catalog.read_log(trainer.log_position, head, limit)
    upto = entries[-1].position if len(entries) == limit else head
    fresh, dead = decoded(entries)
    held, dead_held = decoded(catalog.parked(variant))
    dead += dead_held
    logged = {w.event.event_id: w for w in fresh + held}
    built = build_batch(catalog, trainer.settings, [w.event for w in logged.values()])
    dead += [
        DeadLetter(w.entry.position, w.entry.event_id, reason, w.entry.payload)
        for w, reason in ((logged[e.event_id], reason) for e, reason in built.failed)
    ]
    waiting = apply_bounds(
        [logged[e.event_id] for e in built.no_codes],
        now,
        settings.parked_max_events,
        settings.parked_max_age_s,
    )
    was_held = {w.entry.position for w in held}
    not_trained = {w.entry.position for w in waiting.kept + waiting.dropped}
    not_trained |= {d.position for d in dead}
    released = [w for w in held if w.entry.position not in not_trained]
    resolved = {w.entry.position: "trained" for w in released}
    resolved |= {
        w.entry.position: "dropped" for w in waiting.dropped if w.entry.position in was_held
    }
    resolved |= {d.position: "dead" for d in dead if d.position in was_held}
    park = [(w.entry, w.event.room_id) for w in waiting.kept if w.entry.position not in was_held]
    catalog.record_chunk(variant, upto, park, resolved, dead)
    trainer.log_position = upto
    train_variant(trainer, built.batch, [w.event for w in waiting.dropped])
    return Chunk(
        position=upto,
        trained=0 if built.batch is None else len(built.batch),
        parked=len(waiting.kept),
        released=[w.event.event_id for w in released],
        too_old=len(waiting.too_old),
        too_many=len(waiting.too_many),
        dead=dead,
    )
