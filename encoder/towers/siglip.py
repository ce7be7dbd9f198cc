"""The default vision backend: SigLIP or SigLIP2 from a local transformers checkpoint folder.

The folder is what ``save_pretrained`` writes (``config.json``, weights,
``preprocessor_config.json``); a full SiglipModel checkpoint (text and vision)
works too, and only its vision half is loaded. Preprocessing uses
transformers' PIL image processors with the checkpoint's own size, mean and
std, so torchvision is never imported.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from PIL import Image
from transformers import Siglip2VisionModel, SiglipVisionModel
from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil
from transformers.models.siglip2.image_processing_pil_siglip2 import Siglip2ImageProcessorPil

from encoder.errors import CheckpointError
from encoder.towers.base import VisionTower, pool_patches

# config.json model_type -> (vision model class, PIL image processor class)
KINDS = {
    "siglip": (SiglipVisionModel, SiglipImageProcessorPil),
    "siglip_vision_model": (SiglipVisionModel, SiglipImageProcessorPil),
    "siglip2": (Siglip2VisionModel, Siglip2ImageProcessorPil),
    "siglip2_vision_model": (Siglip2VisionModel, Siglip2ImageProcessorPil),
}


def checkpoint_kind(folder: Path) -> str:
    """The checkpoint's model_type, refused with a clear message unless it is SigLIP(2)."""
    config = folder / "config.json"
    if not config.is_file():
        raise CheckpointError(
            f"vision checkpoint {str(folder)!r} has no config.json; point "
            "encoder.vision.path at a SigLIP/SigLIP2 folder written by save_pretrained"
        )
    kind = json.loads(config.read_text(encoding="utf-8")).get("model_type", "")
    if kind not in KINDS:
        raise CheckpointError(
            f"vision checkpoint {str(folder)!r} is {kind!r}, not one of {', '.join(KINDS)}; "
            "for a CLIP-style checkpoint file use encoder.vision.backend: open_clip"
        )
    if not (folder / "preprocessor_config.json").is_file():
        raise CheckpointError(
            f"vision checkpoint {str(folder)!r} has no preprocessor_config.json; save the "
            "image processor with it (processor.save_pretrained(folder))"
        )
    return kind


class SiglipTower(VisionTower):
    """SiglipVisionModel / Siglip2VisionModel; patch tokens pooled on their grid to K tokens."""

    def __init__(self, folder: str, tokens_per_frame: int) -> None:
        super().__init__()
        path = Path(folder)
        self.kind = checkpoint_kind(path)
        model_class, processor_class = KINDS[self.kind]
        self.model = model_class.from_pretrained(path)
        self.processor = processor_class.from_pretrained(path)
        self.hidden_size = self.model.config.hidden_size
        self.tokens_per_frame = tokens_per_frame
        self.naflex = model_class is Siglip2VisionModel

    def preprocess(self, images: list[Image.Image]) -> dict[str, torch.Tensor]:
        return dict(self.processor(images=images, return_tensors="pt"))

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        dtype = next(self.model.parameters()).dtype
        inputs = {k: v.to(dtype) if k == "pixel_values" else v for k, v in inputs.items()}
        hidden = self.model(**inputs).last_hidden_state
        if self.naflex:
            # SigLIP2 keeps each image's aspect ratio: its own (h, w) patch grid, then padding.
            shapes = inputs["spatial_shapes"].tolist()
        else:
            side = self.model.config.image_size // self.model.config.patch_size
            shapes = [(side, side)] * hidden.shape[0]
        return torch.stack(
            [
                pool_patches(tokens, h, w, self.tokens_per_frame)
                for tokens, (h, w) in zip(hidden, shapes, strict=True)
            ]
        )

    def save(self, folder: str) -> None:
        self.model.save_pretrained(folder)
        self.processor.save_pretrained(folder)
