"""Run by ``.venv-openclip/bin/python`` (open_clip + torchvision live there, not in .venv):
a tiny open_clip ViT, randomly initialised and saved as a local checkpoint file, becomes
the vision tower of a SliceEncoder over the real MiniLM; prints one JSON result.

    .venv-openclip/bin/python tests/integration/encoder/openclip_check.py WORKDIR [FRAME...]
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from configs.encoder import EncoderSettings, TextSettings, VisionSettings
from encoder import SliceEncoder, SliceInput
from encoder.towers.openclip import import_open_clip

TINY_VIT = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 1000, "width": 32, "heads": 2, "layers": 1},
}


def main(workdir: Path, frames: list[str]) -> None:
    open_clip = import_open_clip()
    config = workdir / "tiny-vit.json"
    config.write_text(json.dumps(TINY_VIT))
    open_clip.add_model_config(str(config))
    torch.manual_seed(0)
    model = open_clip.create_model("tiny-vit")
    torch.save(model.state_dict(), workdir / "tiny-vit.pt")  # a whole open_clip checkpoint

    settings = EncoderSettings(
        device="cpu",
        vision=VisionSettings(
            backend="open_clip",
            path=str(workdir / "tiny-vit.pt"),
            open_clip_model=str(config),
            tokens_per_frame=4,
            max_frames=2,
        ),
        text=TextSettings(max_length=32),
    )
    encoder = SliceEncoder.from_settings(settings)
    buffer = io.BytesIO()
    Image.new("RGB", (50, 80), (200, 40, 40)).save(buffer, "PNG")
    slices = [
        SliceInput(slice_id="real", title="Toy Story (1995)", frames=frames[:2]),
        SliceInput(slice_id="bytes", title="Toy Story (1995)", frames=[buffer.getvalue()]),
        SliceInput(slice_id="text", title="Toy Story (1995)"),
        SliceInput(slice_id="broken", title="x", frames=[b"not an image"]),
    ]
    z = encoder.encode(slices)
    encoder.save_pretrained(workdir / "saved", embed_towers=True)
    reloaded = SliceEncoder.from_pretrained(workdir / "saved", device="cpu").encode(slices)
    pixels = encoder.model.vision.preprocess([Image.new("RGB", (50, 80))])["pixel_values"]
    result = {
        "shape": list(z.shape),
        "norms": np.linalg.norm(z, axis=1).tolist(),
        # the drawn frame is always there (the posters only where the data is)
        "frames_change_embedding": bool(not np.allclose(z[1], z[2], atol=1e-4)),
        "reload_max_diff": float(np.abs(reloaded - z).max()),
        "pixel_shape": list(pixels.shape),
        "hidden_size": encoder.model.vision.hidden_size,
        "frame_stats": encoder.frame_stats.as_dict(),
        "saved_vision": sorted(p.name for p in (workdir / "saved" / "vision").iterdir()),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2:])
