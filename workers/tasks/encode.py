"""The encode task: a batch of one room's slices -> embeddings, slice codes, the room code.

Idempotent by slice id: slices already in the catalog are skipped before any
work, and the store itself skips ids it already holds, so a redelivered task
stores nothing twice. Everything a batch produces is written in one
transaction: a worker killed mid-task leaves nothing half-stored, and the
redelivery stores it all. With no active codebook, embeddings are stored and
their codes stay pending until maintenance codes them: it fits the first codebook
once ``workers.bootstrap_min_slices`` slices are encoded, and codes what a codebook
activated since has not coded.

A text-only encoder (no vision tower) ignores frames: each result counts them in
``frames_ignored``, the worker logs it once, and a worker that consumes ``encode``
says at start-up which towers it loads.
"""

from __future__ import annotations

import logging
from functools import cached_property
from typing import Any

import numpy as np
from celery import shared_task, signals

from configs import Settings
from encoder import SliceEncoder
from encoder.images import FrameLoader
from encoder.towers.description import describe, summary
from workers.catalog import SliceRecord
from workers.messages import BadSliceError, parse_slice, to_input
from workers.tasks.base import LucidrecTask

logger = logging.getLogger(__name__)


@signals.celeryd_after_setup.connect
def _say_which_towers(sender: str, instance: Any, **_: Any) -> None:
    """At a worker's start-up, if it consumes ``encode``: the towers its encoder loads."""
    queues = getattr(getattr(instance.app.amqp, "queues", None), "consume_from", None)
    if queues is not None and "encode" not in queues:
        return
    settings: Settings | None = getattr(instance.app, "settings", None)
    if settings is not None:
        logger.info("%s; loaded on the first encode task", summary(describe(settings.encoder)))


class EncodeTask(LucidrecTask):
    """Holds the encoder, loaded once per worker process."""

    abstract = True
    _told_ignored = False

    @cached_property
    def encoder(self) -> SliceEncoder:
        encoder = SliceEncoder.from_settings(self.settings.encoder)
        logger.info("loaded: %s", summary(describe(encoder.settings)))
        return encoder

    @cached_property
    def frame_loader(self) -> FrameLoader:
        return FrameLoader(
            max_pixels=self.settings.encoder.vision.max_image_pixels,
            max_bytes=self.settings.workers.max_frame_bytes,
        )

    def say_frames_ignored(self, count: int) -> None:
        """Say once per process that frames are ignored (results count them every time)."""
        if count and not self._told_ignored:
            self._told_ignored = True
            logger.warning(
                "%d frames ignored: the encoder has no vision tower (set encoder.vision.path "
                "to encode them); every encode result counts them in frames_ignored",
                count,
            )


@shared_task(bind=True, base=EncodeTask, name="lucidrec.encode.slices")
def encode_slices(self: EncodeTask, room_id: str, slices: list[Any]) -> dict[str, Any]:
    """Encode, code and store ``slices`` of ``room_id``; returns what happened to each.

    A payload that is not a list of slices fails the task (its reason stored in
    the result backend, no retry); a bad slice inside a good payload fails alone.
    """
    if not isinstance(room_id, str) or not room_id or not isinstance(slices, list):
        raise TypeError("encode_slices takes a room id and a JSON array of slice objects")
    failed: list[dict[str, str]] = []
    inputs, stamps = [], {}
    for index, raw in enumerate(slices):
        try:
            message = parse_slice(raw)
            inputs.append(to_input(message, room_id, self.settings.workers, self.frame_loader))
            stamps[message.slice_id] = message.ts
        except BadSliceError as exc:
            slice_id = raw.get("slice_id") if isinstance(raw, dict) else None
            failed.append({"slice_id": str(slice_id or f"#{index}"), "reason": str(exc)})
            if isinstance(slice_id, str) and slice_id:
                self.catalog.store_failed(slice_id, room_id, float(raw.get("ts") or 0), str(exc))
    known = self.catalog.known_slices([s.slice_id for s in inputs])
    todo = [s for s in inputs if s.slice_id not in known]
    codebook = self.active_codebook()
    records = []
    ignored = 0
    for outcome in self.encoder.encode_each(todo):
        ignored += outcome.ignored_frames
        if outcome.error is not None:
            failed.append({"slice_id": outcome.slice_id, "reason": outcome.error})
            self.catalog.store_failed(
                outcome.slice_id, room_id, stamps[outcome.slice_id], outcome.error
            )
            continue
        records.append(
            SliceRecord(outcome.slice_id, room_id, stamps[outcome.slice_id], outcome.embedding)
        )
    if codebook is not None and records:
        codes = codebook.encode(np.stack([r.embedding for r in records]))
        records = [
            SliceRecord(r.slice_id, r.room_id, r.ts, r.embedding, tuple(c))
            for r, c in zip(records, codes.tolist(), strict=True)
        ]
    stored = self.catalog.store_encoded(records, codebook.version if codebook else None)
    self.say_frames_ignored(ignored)
    return {
        "room_id": room_id,
        "stored": stored,
        "skipped": sorted(known),
        "failed": failed,
        "codebook_version": codebook.version if codebook else None,
        "codes_pending": codebook is None,
        "frames_ignored": ignored,
    }
