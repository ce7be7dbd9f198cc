"""Item embeddings and LUCID codes for the replay: one encoder pass and one codebook per encoder.

Embeddings are cached per encoder within a run, since several variants share them.
The codebook is fitted on the items seen in the training period only (the first
half of the time range), then every item is encoded with it, so no information
from the evaluation period shapes the codes. ``random`` codes (the control) draw
each item a uniform code of the same shape, which removes all semantics.

No pretrained SigLIP exists offline, so the ``multimodal`` encoder builds a small
SigLIP vision tower from a config with random weights, saves it and loads it back
by path, exactly as a real checkpoint would load: it measures the pipeline, not
SigLIP's knowledge.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from api.evaluation.adapters import Dataset
from api.evaluation.q2i import train_on_first_half
from configs import EncoderSettings
from quantizer import EmbeddingSource, RQKMeans, quality_report

VISION_CONFIG = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "image_size": 64,
    "patch_size": 16,
}


def save_random_siglip(folder: Path, seed: int) -> Path:
    """A small SigLIP vision tower with random weights (and its PIL processor) in ``folder``."""
    import torch
    from transformers import SiglipVisionConfig, SiglipVisionModel
    from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

    if not (folder / "config.json").is_file():
        torch.manual_seed(seed)
        SiglipVisionModel(SiglipVisionConfig(**VISION_CONFIG)).save_pretrained(folder)
        size = VISION_CONFIG["image_size"]
        SiglipImageProcessorPil(size={"height": size, "width": size}).save_pretrained(folder)
    return folder


@dataclass
class ItemCodes:
    """Encodes items once per encoder and quantizes them with a codebook fitted before ``cutoff``.

    Encoders: ``text`` (the configured text tower, frames ignored), ``multimodal``
    (plus the random SigLIP tower) and ``text_q2i`` (text, after Q2I training on
    the events before ``cutoff``).
    """

    data: Dataset
    cutoff: float  # the middle of the time range: the training period ends here
    encoder_settings: EncoderSettings
    levels: int
    codes: int
    seed: int
    work_dir: Path
    q2i_per_user: int = 2
    batch_size: int = 32
    progress: bool = True
    reports: dict[str, dict[str, Any]] = field(default_factory=dict)  # quantizer, per encoder
    q2i_report: dict[str, Any] | None = None
    _embeddings: dict[str, np.ndarray] = field(default_factory=dict)
    _codes: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def fit_items(self) -> np.ndarray:
        """Indices of the items with an event in the training period."""
        return np.unique(self.data.item[self.data.ts < self.cutoff])

    def _settings(self, encoder: str) -> EncoderSettings:
        settings = self.encoder_settings
        if encoder == "multimodal":
            tower = save_random_siglip(self.work_dir / "siglip-random", self.seed)
            return msgspec.structs.replace(
                settings, vision=msgspec.structs.replace(settings.vision, path=str(tower))
            )
        text_only = msgspec.structs.replace(settings.vision, path=None)
        if encoder == "text_q2i":
            folder, report = train_on_first_half(
                self.data,
                self.cutoff,
                settings,
                self.work_dir,
                per_user=self.q2i_per_user,
                seed=self.seed,
                progress=self.progress,
            )
            self.q2i_report = report
            return msgspec.structs.replace(settings, vision=text_only, checkpoint=str(folder))
        return msgspec.structs.replace(settings, vision=text_only)

    def embeddings(self, encoder: str) -> np.ndarray:
        """(items, dim) unit vectors from one of the encoders (cached)."""
        if encoder not in self._embeddings:
            import torch

            from encoder import SliceEncoder

            slices = self.data.slices
            if encoder != "multimodal":
                slices = [msgspec.structs.replace(s, frames=[]) for s in slices]
            settings = self._settings(encoder)
            # fresh projector heads draw from torch's global generator: seed it, so that a
            # run's codes (and so its table) repeat exactly for a seed
            torch.manual_seed(self.seed)
            model = SliceEncoder.from_settings(settings)
            self._embeddings[encoder] = model.encode(slices, self.batch_size, self.progress)
        return self._embeddings[encoder]

    def lucid(self, source: str) -> np.ndarray:
        """(items, levels) codes: ``random``, or RQ-KMeans over an encoder's embeddings."""
        if source not in self._codes:
            if source == "random":
                rng = np.random.default_rng(self.seed)
                codes = rng.integers(0, self.codes, (len(self.data.slices), self.levels))
            else:
                x = self.embeddings(source)
                quantizer = RQKMeans(
                    levels=self.levels, codes=self.codes, seed=self.seed, progress=False
                )
                codebook = quantizer.fit(x[self.fit_items])
                codes = codebook.encode(x)
                self.reports[source] = quality_report(codebook, EmbeddingSource.from_array(x))
            self._codes[source] = codes.astype(np.int64)
        return self._codes[source]
