"""The public face of the package: slices in, 128-d unit vectors out, in batches.

Usage::

    enc = SliceEncoder.from_settings(settings.encoder)    # or SliceEncoder.from_pretrained(folder)
    z = enc.encode(slices, batch_size=32)                 # float32 (n, 128), L2-normalised
    results = enc.encode_each(slices)                     # per slice: embedding or error
    enc.save_pretrained("models/encoder-v1")

Inference runs in eval mode under ``torch.inference_mode``; on CUDA under
autocast at the configured precision (bf16 where supported, else fp16).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import torch
from tqdm.auto import tqdm

from configs.encoder import EncoderSettings
from encoder.batching import Collator
from encoder.checkpoint import load_heads, read_settings, save_folder
from encoder.errors import EncoderError, SliceInputError
from encoder.images import FrameStats
from encoder.modeling import SliceEncoderModel, build_model
from encoder.slices import EncodedSlice, SliceInput

# Settings a caller may change when loading a trained folder: they do not change the model.
RUNTIME_FIELDS = frozenset({"device", "precision", "batch_size", "train"})


def resolve_device(device: str) -> torch.device:
    """``auto`` is CUDA when present; asking for CUDA without one is an error, not a fallback."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise EncoderError("encoder.device is cuda but no CUDA device is visible; use auto or cpu")
    return torch.device(device)


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for inference, or None for plain float32 (always on CPU)."""
    if device.type != "cuda" or precision == "float32":
        return None
    if precision == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float16 if precision == "float16" else torch.bfloat16


class SliceEncoder:
    """A fusion encoder with its preprocessing; the object workers and evaluation call."""

    def __init__(self, model: SliceEncoderModel, settings: EncoderSettings) -> None:
        self.settings = settings
        self.device = resolve_device(settings.device)
        self.autocast_dtype = resolve_precision(settings.precision, self.device)
        self.model = model.to(self.device).eval()
        self.collator = Collator(model, settings)
        # Set by training when it changed a tower, so that save_pretrained embeds it.
        self.trained_text = False
        self.trained_vision = False

    # --- construction ------------------------------------------------------------------

    @classmethod
    def from_settings(cls, settings: EncoderSettings) -> SliceEncoder:
        """The trained folder named by ``settings.checkpoint``, else fresh heads on the towers.

        With a checkpoint, the model comes from the folder and the run-time knobs
        (device, precision, batch size, training) from ``settings``.
        """
        if settings.checkpoint:
            return cls.from_pretrained(
                settings.checkpoint,
                device=settings.device,
                precision=settings.precision,
                batch_size=settings.batch_size,
                train=settings.train,
            )
        return cls(build_model(settings), settings)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike[str], **runtime: Any) -> SliceEncoder:
        """The encoder a ``save_pretrained`` folder holds.

        ``runtime`` overrides the folder's run-time settings: ``device``,
        ``precision``, ``batch_size``, ``train`` (None keeps the saved value).
        """
        path = Path(path)
        unknown = set(runtime) - RUNTIME_FIELDS
        if unknown:
            raise TypeError(f"from_pretrained: not run-time settings: {sorted(unknown)}")
        settings = msgspec.structs.replace(
            read_settings(path), **{k: v for k, v in runtime.items() if v is not None}
        )
        model = build_model(settings)
        load_heads(model, path)
        return cls(model, settings)

    def save_pretrained(self, path: str | os.PathLike[str], *, embed_towers: bool = False) -> None:
        """Write a new folder that ``from_pretrained`` reloads exactly (see encoder.checkpoint)."""
        save_folder(
            self.model,
            self.settings,
            Path(path),
            embed_text=embed_towers or self.trained_text,
            embed_vision=embed_towers or self.trained_vision,
        )

    # --- encoding ----------------------------------------------------------------------

    @property
    def out_dim(self) -> int:
        return self.settings.out_dim

    @property
    def frame_stats(self) -> FrameStats:
        """Frames seen, used and dropped by reason (corrupt, oversized) since construction."""
        return self.collator.stats

    @contextlib.contextmanager
    def _inference(self) -> Iterator[None]:
        self.model.eval()
        with torch.inference_mode(), contextlib.ExitStack() as stack:
            if self.autocast_dtype is not None:
                stack.enter_context(torch.autocast("cuda", dtype=self.autocast_dtype))
            yield

    def encode_each(
        self, slices: Sequence[SliceInput], batch_size: int | None = None, progress: bool = False
    ) -> list[EncodedSlice]:
        """An outcome per slice: its embedding, or why it could not be encoded.

        One bad slice (e.g. a frame path that does not exist) fails alone; frames
        that are bad images are dropped and listed in ``dropped_frames``.
        """
        size = batch_size or self.settings.batch_size
        # Longest texts first: batches of similar length waste less on padding. Each
        # slice's vector does not depend on its batch, so the order changes nothing else.
        order = sorted(range(len(slices)), key=lambda i: -_text_size(slices[i]))
        results: list[EncodedSlice | None] = [None] * len(slices)
        with self._inference(), tqdm(total=len(slices), disable=not progress, unit="slice") as bar:
            for start in range(0, len(order), size):
                chunk = order[start : start + size]
                prepared = self.collator.slices([slices[i] for i in chunk])
                if prepared.batch is not None:
                    z = self.model(prepared.batch.to(self.device)).float().cpu().numpy()
                    for outcome, row in zip(prepared.outcomes, prepared.rows, strict=True):
                        if row is not None:
                            outcome.embedding = z[row]
                for index, outcome in zip(chunk, prepared.outcomes, strict=True):
                    results[index] = outcome
                bar.update(len(chunk))
        return [outcome for outcome in results if outcome is not None]  # every index is set

    def encode(
        self, slices: Sequence[SliceInput], batch_size: int | None = None, progress: bool = False
    ) -> np.ndarray:
        """float32 ``(n, out_dim)`` unit vectors; raises SliceInputError naming a bad slice."""
        results = self.encode_each(slices, batch_size, progress)
        for index, result in enumerate(results):
            if result.error is not None:
                raise SliceInputError(
                    f"slice {index} ({result.slice_id!r}): {result.error} "
                    "(encode_each reports such slices one by one)"
                )
        if not results:
            return np.zeros((0, self.out_dim), dtype=np.float32)
        return np.stack([r.embedding for r in results]).astype(np.float32, copy=False)

    def encode_queries(self, queries: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        """float32 ``(n, out_dim)`` unit vectors of text queries (the Q2I query side)."""
        size = batch_size or self.settings.batch_size
        max_length = self.settings.train.query_max_length
        out = []
        with self._inference():
            for start in range(0, len(queries), size):
                batch = self.collator.queries(list(queries[start : start + size]), max_length)
                out.append(self.model(batch.to(self.device)).float().cpu().numpy())
        if not out:
            return np.zeros((0, self.out_dim), dtype=np.float32)
        return np.concatenate(out).astype(np.float32, copy=False)


def _text_size(item: SliceInput) -> int:
    return sum(len(text) for text in item.text_fields().values())
