"""``lucidrec encoder train`` as a function: build the encoder, split the pairs, train, report."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from configs.encoder import EncoderSettings
from encoder.errors import EncoderError
from encoder.slice_encoder import SliceEncoder
from encoder.training.pairs import read_pairs, split_by_group
from encoder.training.trainer import CHECKPOINT, Trainer


def train_encoder(
    settings: EncoderSettings,
    pairs: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    eval_pairs: str | os.PathLike[str] | None = None,
    resume: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Train on the pairs file and return the recall report (also in ``out/report.json``).

    The encoder starts from ``settings.checkpoint`` when set (fine-tuning a trained
    folder), else from fresh heads on the configured towers, seeded with
    ``train.seed``. Without ``eval_pairs``, ``train.eval_fraction`` of the groups
    are held out. ``resume`` continues from ``out/checkpoint.pt``.
    """
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not resume:
        raise EncoderError(f"{out} is not empty; pick a new folder, or pass resume to continue")
    if resume and not (out / CHECKPOINT).is_file():
        raise EncoderError(f"nothing to resume: {out / CHECKPOINT} does not exist")
    train = read_pairs(pairs)
    if eval_pairs is not None:
        held_out = read_pairs(eval_pairs)
    elif settings.train.eval_fraction > 0:
        train, held_out = split_by_group(train, settings.train.eval_fraction, settings.train.seed)
    else:
        held_out = []
    torch.manual_seed(settings.train.seed)
    encoder = SliceEncoder.from_settings(settings)
    trainer = Trainer(encoder, settings.train, out, progress=progress)
    return trainer.fit(train, held_out, resume=resume)
