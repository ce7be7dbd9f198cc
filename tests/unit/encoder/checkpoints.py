"""Real checkpoints made small: tiny towers saved to disk with save_pretrained, loaded back
through the same code path a real SigLIP, SigLIP2 or Qwen3 folder takes."""

from __future__ import annotations

import io
from pathlib import Path

import torch
from PIL import Image
from transformers import (
    AutoTokenizer,
    Qwen3Config,
    Qwen3Model,
    Siglip2VisionConfig,
    Siglip2VisionModel,
    SiglipVisionConfig,
    SiglipVisionModel,
)
from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil
from transformers.models.siglip2.image_processing_pil_siglip2 import Siglip2ImageProcessorPil

from encoder.towers.text import packaged_minilm

TINY = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
}


def save_tiny_siglip(folder: Path, image_size: int = 32, patch_size: int = 8) -> Path:
    """A 1-layer SigLIP vision tower (random weights) and its image processor."""
    torch.manual_seed(0)
    config = SiglipVisionConfig(**TINY, image_size=image_size, patch_size=patch_size)
    SiglipVisionModel(config).save_pretrained(folder)
    SiglipImageProcessorPil(size={"height": image_size, "width": image_size}).save_pretrained(
        folder
    )
    return folder


def save_tiny_siglip2(folder: Path) -> Path:
    """A 1-layer SigLIP2 (NaFlex: per-image aspect ratio, up to 16 patches of 8 px)."""
    torch.manual_seed(0)
    Siglip2VisionModel(Siglip2VisionConfig(**TINY, patch_size=8, num_patches=16)).save_pretrained(
        folder
    )
    Siglip2ImageProcessorPil(patch_size=8, max_num_patches=16).save_pretrained(folder)
    return folder


def save_tiny_decoder(folder: Path) -> Path:
    """A 1-layer Qwen3 decoder (random weights) with MiniLM's tokenizer: the decoder path."""
    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(packaged_minilm())
    config = Qwen3Config(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=16,
    )
    Qwen3Model(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def image_bytes(color: tuple[int, int, int], size: tuple[int, int] = (40, 30), fmt="PNG") -> bytes:
    """A small real image file's bytes."""
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, fmt)
    return buffer.getvalue()
