"""Turning slices (and queries) into model inputs, with per-slice outcomes.

A slice whose input is wrong through the caller's fault (a frame path that
does not exist) is left out of the batch and reported with its reason; a frame
that is merely a bad image is dropped and the slice encodes from the rest.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from configs.encoder import EncoderSettings
from encoder.errors import SliceInputError
from encoder.images import FrameLoader, FrameStats, sample_evenly
from encoder.modeling import FusedBatch, SliceEncoderModel
from encoder.slices import EncodedSlice, SliceInput
from encoder.text_fields import TextComposer


@dataclass
class Prepared:
    """A batch ready for the model, and an outcome per input slice (embedding still empty).

    ``rows[i]`` is the batch row of slice i, or None when the slice failed.
    """

    batch: FusedBatch | None
    outcomes: list[EncodedSlice]
    rows: list[int | None]


class Collator:
    """Builds :class:`FusedBatch` es for one model: budgeted text, guarded frames, preprocessing."""

    def __init__(self, model: SliceEncoderModel, settings: EncoderSettings) -> None:
        self.model = model
        self.composer = TextComposer(
            model.text.tokenizer, model.text.max_length, settings.text.field_budget
        )
        self.loader = FrameLoader(settings.vision.max_image_pixels, settings.vision.max_frame_bytes)
        self.stats = FrameStats()

    def slices(self, slices: list[SliceInput]) -> Prepared:
        """Inputs for ``slices``; frames are read only when a vision tower is configured."""
        outcomes: list[EncodedSlice] = []
        rows: list[int | None] = []
        texts: list[str] = []
        images: list = []
        slots: list[int] = []
        for item in slices:
            outcome = EncodedSlice(slice_id=item.slice_id)
            outcomes.append(outcome)
            try:
                frame_images = self._frames(item, outcome)
            except SliceInputError as exc:
                outcome.error = str(exc)
                rows.append(None)
                continue
            row = len(texts)
            rows.append(row)
            texts.append(self.composer.compose(item.text_fields()))
            for index, image in enumerate(frame_images):
                images.append(image)
                slots.append(row * self.model.max_frames + index)
        if not texts:
            return Prepared(None, outcomes, rows)
        batch = FusedBatch(text=self.model.text.tokenize(texts))
        if images:
            assert self.model.vision is not None
            batch.pixels = self.model.vision.preprocess(images)
            batch.frame_slots = torch.tensor(slots, dtype=torch.long)
        return Prepared(batch, outcomes, rows)

    def _frames(self, item: SliceInput, outcome: EncodedSlice) -> list:
        if not item.frames:
            return []
        if self.model.vision is None:  # a text-only encoder: counted, so callers can say so
            self.stats.ignore(len(item.frames))
            outcome.ignored_frames = len(item.frames)
            return []
        chosen = sample_evenly(list(item.frames), self.model.max_frames)
        images, dropped = self.loader.open_all(chosen, item.slice_id)
        outcome.frames_used, outcome.dropped_frames = len(images), dropped
        self.stats.record(len(images), dropped)
        return images

    def queries(self, queries: list[str], max_length: int | None = None) -> FusedBatch:
        """Text-only inputs for query strings (marked as the ``query`` field)."""
        texts = [self.composer.compose({"query": query}) for query in queries]
        return FusedBatch(text=self.model.text.tokenize(texts, max_length))
