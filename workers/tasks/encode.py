"""The encode task: a batch of one room's slices -> embeddings, slice codes, the room code.

Idempotent by slice id: slices already in the catalog are skipped before any
work, and the store itself skips ids it already holds, so a redelivered task
stores nothing twice. Everything a batch produces is written in one
transaction: a worker killed mid-task leaves nothing half-stored, and the
redelivery stores it all. With no active codebook, embeddings are stored and
their codes stay pending until maintenance codes them.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import numpy as np
from celery import shared_task

from encoder import SliceEncoder
from encoder.images import FrameLoader
from workers.catalog import SliceRecord
from workers.messages import BadSliceError, parse_slice, to_input
from workers.tasks.base import LucidrecTask


class EncodeTask(LucidrecTask):
    """Holds the encoder, loaded once per worker process."""

    abstract = True

    @cached_property
    def encoder(self) -> SliceEncoder:
        return SliceEncoder.from_settings(self.settings.encoder)

    @cached_property
    def frame_loader(self) -> FrameLoader:
        return FrameLoader(
            max_pixels=self.settings.encoder.vision.max_image_pixels,
            max_bytes=self.settings.workers.max_frame_bytes,
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
    for outcome in self.encoder.encode_each(todo):
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
    return {
        "room_id": room_id,
        "stored": stored,
        "skipped": sorted(known),
        "failed": failed,
        "codebook_version": codebook.version if codebook else None,
        "codes_pending": codebook is None,
    }
