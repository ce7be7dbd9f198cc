"""save_pretrained / from_pretrained: a folder that reloads the same encoder exactly."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import numpy as np
import pytest
import torch

from configs.encoder import EncoderSettings
from encoder import CheckpointError, SliceEncoder, SliceInput
from tests.unit.encoder.checkpoints import image_bytes

SLICES = [
    SliceInput(slice_id="a", title="ramen cooking live", frames=[image_bytes((200, 30, 30))]),
    SliceInput(slice_id="b", asr="the rook goes to e8"),
]


def test_a_saved_encoder_reloads_to_the_same_embeddings(fused: SliceEncoder, tmp_path) -> None:
    fused.save_pretrained(tmp_path / "enc")
    assert sorted(p.name for p in (tmp_path / "enc").iterdir()) == [
        "encoder.json",
        "heads.safetensors",
    ]
    meta = json.loads((tmp_path / "enc" / "encoder.json").read_text())
    assert meta["settings"]["text"]["path"] is None  # the packaged MiniLM, by reference
    assert meta["settings"]["text"]["max_length"] == 32
    assert (meta["text_kind"], meta["pooling"]) == ("encoder", "mean")
    reloaded = SliceEncoder.from_pretrained(tmp_path / "enc", device="cpu")
    np.testing.assert_allclose(reloaded.encode(SLICES), fused.encode(SLICES), atol=1e-6)


def test_embedded_towers_make_a_self_contained_folder(
    fused_settings: EncoderSettings, tmp_path: Path
) -> None:
    encoder = SliceEncoder.from_settings(fused_settings)
    with torch.no_grad():  # as training would: change the text tower and the heads
        encoder.model.text.model.encoder.layer[-1].output.dense.bias.add_(0.05)
        encoder.model.head.bias.add_(0.1)
    encoder.trained_text = True
    encoder.save_pretrained(tmp_path / "enc", embed_towers=True)
    assert (tmp_path / "enc" / "text" / "tokenizer.json").is_file()
    assert (tmp_path / "enc" / "vision" / "preprocessor_config.json").is_file()
    meta = json.loads((tmp_path / "enc" / "encoder.json").read_text())
    assert meta["settings"]["text"]["path"] == "text"
    moved = tmp_path / "moved"
    (tmp_path / "enc").rename(moved)
    reloaded = SliceEncoder.from_pretrained(moved, device="cpu")
    np.testing.assert_allclose(reloaded.encode(SLICES), encoder.encode(SLICES), atol=1e-6)


def test_from_settings_loads_the_configured_checkpoint(fused: SliceEncoder, tmp_path) -> None:
    fused.save_pretrained(tmp_path / "enc")
    settings = msgspec.structs.replace(
        EncoderSettings(device="cpu", batch_size=3), checkpoint=str(tmp_path / "enc")
    )
    loaded = SliceEncoder.from_settings(settings)
    np.testing.assert_allclose(loaded.encode(SLICES), fused.encode(SLICES), atol=1e-6)
    # The model comes from the folder, the run-time knobs from the caller's settings.
    assert loaded.model.vision is not None and loaded.settings.text.max_length == 32
    assert loaded.settings.batch_size == 3


def test_saving_never_overwrites_and_bad_folders_are_refused(fused: SliceEncoder, tmp_path) -> None:
    (tmp_path / "taken").mkdir()
    with pytest.raises(CheckpointError, match="already exists"):
        fused.save_pretrained(tmp_path / "taken")
    assert list(tmp_path.iterdir()) == [tmp_path / "taken"]
    with pytest.raises(CheckpointError, match="not an encoder folder"):
        SliceEncoder.from_pretrained(tmp_path / "taken")
    fused.save_pretrained(tmp_path / "enc")
    (tmp_path / "enc" / "heads.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match=r"heads\.safetensors: cannot read"):
        SliceEncoder.from_pretrained(tmp_path / "enc")
