"""What workers and the API say about the encoder's towers, told from settings alone."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from configs.encoder import EncoderSettings, TextSettings, VisionSettings
from encoder.towers.description import PACKAGED_TEXT, describe, summary


def test_the_default_encoder_is_text_only_on_the_packaged_minilm() -> None:
    towers = describe(EncoderSettings())
    assert towers == {"checkpoint": None, "text": PACKAGED_TEXT, "vision": None}
    line = summary(towers)
    assert "all-MiniLM-L6-v2" in line
    assert "no vision tower: frames in slices are ignored" in line
    assert "encoder.vision.path" in line


def test_configured_towers_are_named_with_their_paths() -> None:
    siglip = EncoderSettings(
        text=TextSettings(path="/models/qwen3"), vision=VisionSettings(path="/models/siglip2")
    )
    assert describe(siglip) == {
        "checkpoint": None,
        "text": "/models/qwen3",
        "vision": "siglip: /models/siglip2",
    }
    assert "vision tower siglip: /models/siglip2" in summary(describe(siglip))
    clip = EncoderSettings(
        vision=VisionSettings(backend="open_clip", path="/w/clip.bin", open_clip_model="ViT-L-14")
    )
    assert describe(clip)["vision"] == "open_clip ViT-L-14: /w/clip.bin"


def test_a_checkpoint_is_described_by_the_towers_it_was_saved_with(tmp_path: Path) -> None:
    folder = tmp_path / "enc-v1"
    folder.mkdir()
    saved = {
        "format": 1,
        "settings": {"text": {"path": "text"}, "vision": {"path": "vision", "backend": "siglip"}},
    }
    (folder / "encoder.json").write_text(json.dumps(saved))
    towers = describe(EncoderSettings(checkpoint=str(folder)))
    assert towers == {
        "checkpoint": str(folder),
        "text": str(folder / "text"),
        "vision": f"siglip: {folder / 'vision'}",
    }
    assert summary(towers).startswith(f"encoder towers: checkpoint {folder}; ")


def test_an_unreadable_checkpoint_says_why(tmp_path: Path) -> None:
    towers = describe(EncoderSettings(checkpoint=str(tmp_path)))
    assert towers["text"] is None and towers["vision"] is None
    assert "not an encoder folder" in towers["error"]
    assert "cannot be read" in summary(towers)


def test_describing_the_towers_loads_neither_torch_nor_transformers() -> None:
    code = (
        "import sys; from configs.encoder import EncoderSettings; "
        "from encoder.towers.description import describe; describe(EncoderSettings()); "
        "print('torch' in sys.modules, 'transformers' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
