"""Slice encoder: a livestream slice (frames + text fields) -> a 128-d unit vector.

A SigLIP (or open_clip) vision tower whose patch tokens, pooled to K per frame
and projected, are prepended to a text model's token embeddings (single-tower
fusion); the pooled output goes through a linear head and L2 normalisation.
A library with numpy/torch in and out; ``encoder.training`` trains it with
query-to-item contrastive learning.
"""

from encoder.errors import CheckpointError, EncoderError, SliceInputError
from encoder.images import FrameStats
from encoder.slice_encoder import SliceEncoder
from encoder.slices import EncodedSlice, SliceInput, read_slices

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
