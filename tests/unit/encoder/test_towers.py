"""Towers loaded from folders on disk: SigLIP, SigLIP2 (NaFlex), a decoder text model, pooling."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from configs.encoder import EncoderSettings, TextSettings, VisionSettings
from encoder import CheckpointError, SliceEncoder, SliceInput
from encoder.towers.base import pool_grid_shape, pool_patches
from encoder.towers.siglip import SiglipTower
from encoder.towers.text import TextTower
from tests.unit.encoder.checkpoints import image_bytes, save_tiny_decoder, save_tiny_siglip2


@pytest.mark.parametrize(("k", "grid"), [(1, (1, 1)), (4, (2, 2)), (8, (2, 4)), (7, (1, 7))])
def test_visual_tokens_pool_on_the_most_square_grid(k: int, grid: tuple[int, int]) -> None:
    assert pool_grid_shape(k) == grid


def test_pooling_averages_grid_regions() -> None:
    patches = torch.arange(16.0).reshape(16, 1)  # a 4x4 grid of scalars, row-major
    pooled = pool_patches(patches, 4, 4, 4)
    assert pooled.squeeze(1).tolist() == [2.5, 4.5, 10.5, 12.5]  # the four 2x2 quadrants
    padded = torch.cat([patches, torch.full((5, 1), 99.0)])  # SigLIP2 padding is ignored
    assert torch.equal(pool_patches(padded, 4, 4, 4), pooled)


def test_siglip_tower_uses_the_checkpoints_own_preprocessing(siglip_dir: Path) -> None:
    tower = SiglipTower(str(siglip_dir), tokens_per_frame=4)
    inputs = tower.preprocess([Image.new("RGB", (50, 70), (255, 255, 255))])
    assert inputs["pixel_values"].shape == (1, 3, 32, 32)
    # Rescaled by 1/255 and normalised with mean = std = 0.5: white becomes 1.0.
    assert torch.allclose(inputs["pixel_values"], torch.ones(1, 3, 32, 32))
    assert tower(inputs).shape == (1, 4, 32)


def test_siglip2_keeps_aspect_ratio_and_pools_each_image_on_its_own_grid(tmp_path: Path) -> None:
    tower = SiglipTower(str(save_tiny_siglip2(tmp_path)), tokens_per_frame=2)
    images = [Image.new("RGB", (80, 40)), Image.new("RGB", (24, 96))]
    inputs = tower.preprocess(images)
    shapes = inputs["spatial_shapes"].tolist()
    assert shapes[0][1] > shapes[0][0] and shapes[1][0] > shapes[1][1]
    assert tower(inputs).shape == (2, 2, 32)
    settings = EncoderSettings(device="cpu", vision=VisionSettings(path=str(tmp_path)))
    z = SliceEncoder.from_settings(settings).encode(
        [SliceInput(slice_id="a", title="t", frames=[image_bytes((1, 2, 3), (80, 40))])]
    )
    assert z.shape == (1, 128)


def test_a_decoder_text_model_pools_its_last_real_token(tmp_path: Path) -> None:
    tower = TextTower(str(save_tiny_decoder(tmp_path)))
    assert (tower.kind, tower.pooling) == ("decoder", "last")
    inputs = tower.tokenize(["a longer text than the other one", "short"])
    with torch.inference_mode():
        pooled = tower(tower.embed(inputs["input_ids"]), inputs["attention_mask"])
        alone = tower.tokenize(["short"])
        single = tower(tower.embed(alone["input_ids"]), alone["attention_mask"])
    torch.testing.assert_close(pooled[1], single[0], atol=1e-5, rtol=1e-4)
    overridden = TextTower(str(tmp_path), pooling="mean")
    assert overridden.pooling == "mean"


def test_the_decoder_path_encodes_fused_slices(tmp_path: Path, siglip_dir: Path) -> None:
    settings = EncoderSettings(
        device="cpu",
        vision=VisionSettings(path=str(siglip_dir)),
        text=TextSettings(path=str(save_tiny_decoder(tmp_path / "qwen3")), max_length=24),
    )
    z = SliceEncoder.from_settings(settings).encode(
        [
            SliceInput(slice_id="a", title="cooking", frames=[image_bytes((9, 9, 9))]),
            SliceInput(slice_id="b"),
        ]
    )
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1.0, rtol=1e-5)


def test_folders_that_are_not_checkpoints_are_refused_clearly(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"has no config\.json"):
        SiglipTower(str(tmp_path), 4)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(CheckpointError, match="is 'bert', not one of siglip"):
        SiglipTower(str(tmp_path), 4)
    with pytest.raises(CheckpointError, match=r"encoder\.text\.path"):
        TextTower(str(tmp_path / "nowhere"))
