"""The second vision backend: an open_clip ViT from a local checkpoint file (optional extra).

``open_clip.create_model_and_transforms(name, pretrained=<local file>)`` builds
the model with its weights and its own evaluation preprocessing (resize, centre
crop, the architecture's mean/std, via torchvision). The file may also hold only
the ``visual.`` half of the state dict (what ``save`` writes), loaded into the
visual tower directly. ``name`` is a registered open_clip
architecture (``ViT-B-16``) or the path of a model-config JSON file, for
custom architectures. The patch tokens of the ViT are pooled on their grid to
K tokens, as with SigLIP.

open_clip needs torchvision, which lives in an environment of its own
(``pip install 'lucidrec[open-clip]'``). With a CPU build of torch, the
torchvision wheel's compiled operators may not load; torchvision then fails on
import while registering fake kernels for ``nms``/``qnms``. Declaring those two
operator schemas first lets it import; no torchvision operator is ever run here.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import torch
from PIL import Image

from encoder.errors import CheckpointError, EncoderError
from encoder.towers.base import VisionTower, pool_patches

# The torchvision operators that torchvision registers fake kernels for at import.
TORCHVISION_SCHEMAS = {
    "nms": "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}


def _declare_torchvision_ops() -> None:
    """Declare the schemas torchvision's import needs when its compiled ops did not load."""
    for name, schema in TORCHVISION_SCHEMAS.items():
        if not hasattr(torch.ops.torchvision, name):
            torch.library.define(f"torchvision::{name}", schema)


def import_open_clip() -> ModuleType:
    """open_clip, importable on CPU torch; a clear error when the extra is not installed."""
    try:
        import torchvision
    except ModuleNotFoundError:
        raise EncoderError(
            "the open_clip backend needs open_clip_torch and torchvision: "
            "pip install 'lucidrec[open-clip]' (in an environment of its own)"
        ) from None
    except RuntimeError:
        _declare_torchvision_ops()
        import torchvision  # noqa: F401
    try:
        import open_clip
    except ModuleNotFoundError:
        raise EncoderError(
            "the open_clip backend needs open_clip_torch: pip install 'lucidrec[open-clip]'"
        ) from None
    return open_clip


class OpenClipTower(VisionTower):
    """The visual half of an open_clip model; needs a ViT (a VisionTransformer with a grid)."""

    def __init__(self, model_name: str, checkpoint: str, tokens_per_frame: int) -> None:
        super().__init__()
        open_clip = import_open_clip()
        if model_name.endswith(".json"):
            open_clip.add_model_config(model_name)
            model_name = Path(model_name).stem
        if not Path(checkpoint).is_file():
            raise CheckpointError(
                f"open_clip checkpoint {checkpoint!r} is not a file; point encoder.vision.path "
                "at a local .safetensors/.pt state dict of the model"
            )
        state = open_clip.factory.load_state_dict(checkpoint)
        visual_only = all(key.startswith("visual.") for key in state)
        model, _, self.transform = open_clip.create_model_and_transforms(
            model_name, pretrained=None if visual_only else checkpoint
        )
        if visual_only:  # what save() writes: the visual half
            model.visual.load_state_dict({k.removeprefix("visual."): v for k, v in state.items()})
        self.visual = model.visual
        if not hasattr(self.visual, "grid_size"):
            raise CheckpointError(
                f"open_clip model {model_name!r} has no ViT patch grid; use a ViT architecture"
            )
        self.visual.output_tokens = True
        self.model_name = model_name
        self.hidden_size = self.visual.transformer.width
        self.tokens_per_frame = tokens_per_frame

    def preprocess(self, images: list[Image.Image]) -> dict[str, torch.Tensor]:
        return {"pixel_values": torch.stack([self.transform(image) for image in images])}

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        dtype = next(self.visual.parameters()).dtype
        _, tokens = self.visual(inputs["pixel_values"].to(dtype))
        height, width = self.visual.grid_size
        return torch.stack([pool_patches(t, height, width, self.tokens_per_frame) for t in tokens])

    def save(self, folder: str) -> None:
        """The visual weights only, under ``visual.``, as open_clip's state dict names them."""
        from safetensors.torch import save_file

        state = {f"visual.{k}": v.contiguous() for k, v in self.visual.state_dict().items()}
        save_file(state, str(Path(folder) / "open_clip_visual.safetensors"))
