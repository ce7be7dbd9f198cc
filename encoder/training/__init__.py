"""Q2I contrastive training of the slice encoder: pairs, loss, trainer, held-out recall."""

from encoder.training.evaluate import recall_at_k
from encoder.training.loss import InfoNCE, false_negative_mask
from encoder.training.pairs import (
    Pair,
    PairLine,
    mixed_batches,
    read_pairs,
    split_by_group,
    write_pairs,
)
from encoder.training.run import train_encoder
from encoder.training.trainer import Trainer

__all__ = [
    "InfoNCE",
    "Pair",
    "PairLine",
    "Trainer",
    "false_negative_mask",
    "mixed_batches",
    "read_pairs",
    "recall_at_k",
    "split_by_group",
    "train_encoder",
    "write_pairs",
]
