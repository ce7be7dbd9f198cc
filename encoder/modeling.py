"""The fusion model: visual tokens projected into the text model's embedding space, one tower.

Shapes, for a batch of B slices with at most F frames of K visual tokens each,
text length T, vision width V, text width H and output size D::

    frames (n_images <= B*F) --vision tower--> (n_images, K, V) --projector--> (n_images, K, H)
    scattered into frame slots                 (B, F*K, H), slot mask (B, F*K)
    token embeddings of the joined text        (B, T, H),   text mask (B, T)
    fused = [slots ; text]                     (B, F*K + T, H) --text model--> (B, F*K + T, H)
    pooled (mean, or last unmasked token)      (B, H) --head--> (B, D) --L2--> unit vectors

The F*K slots are always there when a vision tower is configured, filled or
masked, so a slice's text sits at the same positions whichever other slices
share its batch: encoding is deterministic per slice.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional

from configs.encoder import EncoderSettings
from encoder.errors import EncoderError
from encoder.towers.base import VisionTower
from encoder.towers.text import TextTower


@dataclass
class FusedBatch:
    """Model inputs of B slices: tokenized text, and the preprocessed frames that survived.

    ``frame_slots`` gives, per image in ``pixels``, its slot ``b * F + f``.
    """

    text: dict[str, torch.Tensor]
    pixels: dict[str, torch.Tensor] | None = None
    frame_slots: torch.Tensor | None = None

    def to(self, device: torch.device) -> FusedBatch:
        return FusedBatch(
            text=_moved(self.text, device),
            pixels=_moved(self.pixels, device) if self.pixels is not None else None,
            frame_slots=self.frame_slots.to(device) if self.frame_slots is not None else None,
        )


def _moved(tensors: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {name: tensor.to(device) for name, tensor in tensors.items()}


class SliceEncoderModel(nn.Module):
    """Vision tower (optional), projector, text tower and head; returns L2-normalised vectors."""

    def __init__(
        self,
        text: TextTower,
        vision: VisionTower | None,
        *,
        out_dim: int,
        max_frames: int,
        projector_hidden: int | None = None,
    ) -> None:
        super().__init__()
        self.text = text
        self.vision = vision
        self.max_frames = max_frames
        self.projector: nn.Module | None = None
        if vision is not None:
            hidden = projector_hidden or text.hidden_size
            self.projector = nn.Sequential(
                nn.Linear(vision.hidden_size, hidden),
                nn.GELU(),
                nn.Linear(hidden, text.hidden_size),
            )
        self.head = nn.Linear(text.hidden_size, out_dim)

    @property
    def visual_length(self) -> int:
        """F*K: the frame slots prepended to every text (0 for a text-only encoder)."""
        return 0 if self.vision is None else self.max_frames * self.vision.tokens_per_frame

    def visual_slots(self, batch: FusedBatch, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Projected visual tokens scattered into (B, F*K, H) slots and their mask (B, F*K)."""
        assert self.vision is not None and self.projector is not None
        k, width = self.vision.tokens_per_frame, self.text.hidden_size
        device = batch.text["input_ids"].device
        slots = torch.zeros(size * self.max_frames, k, width, device=device)
        mask = torch.zeros(size * self.max_frames, k, dtype=torch.long, device=device)
        if batch.pixels is not None and batch.frame_slots is not None:
            tokens = self.projector(self.vision(batch.pixels))
            slots = slots.to(tokens.dtype).index_copy(0, batch.frame_slots, tokens)
            mask[batch.frame_slots] = 1
        return slots.view(size, -1, width), mask.view(size, -1)

    def forward(self, batch: FusedBatch) -> torch.Tensor:
        """Unit vectors (B, out_dim) of the slices (or text-only queries) in ``batch``."""
        embeds = self.text.embed(batch.text["input_ids"])
        mask = batch.text["attention_mask"]
        if self.vision is not None:
            slots, slot_mask = self.visual_slots(batch, embeds.shape[0])
            embeds = torch.cat([slots.to(embeds.dtype), embeds], dim=1)
            mask = torch.cat([slot_mask, mask], dim=1)
        return functional.normalize(self.head(self.text(embeds, mask)), dim=-1)


def build_model(settings: EncoderSettings) -> SliceEncoderModel:
    """Load the towers named by ``settings`` and add a fresh projector and head.

    The fresh layers are drawn from ``settings.train.seed`` (without touching the
    process's global RNG), so every worker process that builds the same untrained
    encoder computes the same embeddings, and the codes of one slice never depend
    on which process encoded it.
    """
    text = TextTower(settings.text.path, settings.text.pooling, settings.text.max_length)
    vision = build_vision(settings)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings.train.seed)
        model = SliceEncoderModel(
            text,
            vision,
            out_dim=settings.out_dim,
            max_frames=settings.vision.max_frames,
            projector_hidden=settings.projector_hidden,
        )
    fused = model.visual_length + text.max_length
    if text.max_positions is not None and fused > text.max_positions:
        raise EncoderError(
            f"fused sequence of {model.visual_length} visual + {text.max_length} text tokens "
            f"exceeds the text model's {text.max_positions} positions; lower "
            "encoder.text.max_length, vision.max_frames or vision.tokens_per_frame"
        )
    return model


def build_vision(settings: EncoderSettings) -> VisionTower | None:
    """The configured vision backend, or None for a text-only encoder."""
    vision = settings.vision
    if vision.path is None:
        return None
    if vision.backend == "open_clip":
        from encoder.towers.openclip import OpenClipTower

        return OpenClipTower(vision.open_clip_model, vision.path, vision.tokens_per_frame)
    from encoder.towers.siglip import SiglipTower

    return SiglipTower(vision.path, vision.tokens_per_frame)
