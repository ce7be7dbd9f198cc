"""What every vision backend provides, and the pooling of patch tokens to K visual tokens.

A backend owns its image preprocessing (SigLIP's and open_clip's differ) and
returns K tokens per image, so the fusion code never sees a backend's details.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import torch
from PIL import Image
from torch import nn
from torch.nn import functional


def pool_grid_shape(tokens: int) -> tuple[int, int]:
    """The most nearly square (rows, cols) grid with rows * cols == tokens (4 -> 2x2, 8 -> 2x4)."""
    rows = max(d for d in range(1, math.isqrt(tokens) + 1) if tokens % d == 0)
    return rows, tokens // rows


def pool_patches(patches: torch.Tensor, height: int, width: int, tokens: int) -> torch.Tensor:
    """Average-pool one image's row-major patch tokens ``(height*width, dim)`` to ``(tokens, dim)``.

    Pooling on the 2-D grid keeps each visual token a region of the frame
    (top-left, top-right, ...), which a 1-D pool over the sequence would not.
    """
    grid = patches[: height * width].T.reshape(1, -1, height, width)
    pooled = functional.adaptive_avg_pool2d(grid, pool_grid_shape(tokens))
    return pooled.flatten(2)[0].T


class VisionTower(nn.Module, ABC):
    """A frozen-by-default image encoder that yields ``tokens_per_frame`` tokens per image."""

    hidden_size: int
    tokens_per_frame: int

    @abstractmethod
    def preprocess(self, images: list[Image.Image]) -> dict[str, torch.Tensor]:
        """The backend's own preprocessing of RGB images into model inputs (CPU tensors)."""

    @abstractmethod
    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """``(n_images, tokens_per_frame, hidden_size)`` visual tokens."""

    @abstractmethod
    def save(self, folder: str) -> None:
        """Write the tower's weights and preprocessing so that ``load`` reads them back."""
