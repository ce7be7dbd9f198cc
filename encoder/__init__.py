"""Slice encoder: a livestream slice (frames + text fields) -> a 128-d unit vector.

A SigLIP (or open_clip) vision tower whose patch tokens, pooled to K per frame
and projected, are prepended to a text model's token embeddings (single-tower
fusion); the pooled output goes through a linear head and L2 normalisation.
A library with numpy/torch in and out; ``encoder.training`` trains it with
query-to-item contrastive learning.

Names are imported on first use (PEP 562), so that ``import encoder`` (and the
command line's ``--help``) does not pay for torch and transformers.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from encoder.errors import CheckpointError, EncoderError, SliceInputError
    from encoder.images import FrameStats
    from encoder.slice_encoder import SliceEncoder
    from encoder.slices import EncodedSlice, SliceInput, read_slices

_WHERE = {
    "CheckpointError": "encoder.errors",
    "EncoderError": "encoder.errors",
    "SliceInputError": "encoder.errors",
    "FrameStats": "encoder.images",
    "SliceEncoder": "encoder.slice_encoder",
    "EncodedSlice": "encoder.slices",
    "SliceInput": "encoder.slices",
    "read_slices": "encoder.slices",
}

__all__ = [
    "CheckpointError",
    "EncodedSlice",
    "EncoderError",
    "FrameStats",
    "SliceEncoder",
    "SliceInput",
    "SliceInputError",
    "read_slices",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'encoder' has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name]), name)
