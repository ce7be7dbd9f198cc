"""Fixtures: tiny vision towers on disk and encoders built on the real MiniLM text tower."""

from __future__ import annotations

from pathlib import Path

import pytest

from configs.encoder import EncoderSettings, TextSettings, VisionSettings
from encoder import SliceEncoder
from tests.unit.encoder.checkpoints import save_tiny_siglip


@pytest.fixture(scope="session")
def siglip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_siglip(tmp_path_factory.mktemp("siglip"))


@pytest.fixture(scope="session")
def fused_settings(siglip_dir: Path) -> EncoderSettings:
    """Tiny SigLIP (2 frames x 4 tokens) fused into the real MiniLM, texts of 32 tokens."""
    return EncoderSettings(
        device="cpu",
        vision=VisionSettings(path=str(siglip_dir), max_frames=2, tokens_per_frame=4),
        text=TextSettings(max_length=32),
    )


@pytest.fixture(scope="session")
def fused(fused_settings: EncoderSettings) -> SliceEncoder:
    return SliceEncoder.from_settings(fused_settings)
