"""Optional Q2I training of the text encoder on the first half of the log only.

The recommender's own signal as query-to-item pairs: the content of an item a user
liked is the query, the next item the same user liked is the target. Only events
before the cutoff (the middle of the time range) make pairs, so the trained
encoder, like the codebook, never sees the evaluation period. Training itself is
``encoder.training.train_encoder`` with the profile's encoder.train settings
(held-out users' recall@k goes into the report).
"""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from api.evaluation.adapters import Dataset, EvaluationError
from configs import EncoderSettings
from encoder.slices import SliceInput, SliceLine
from encoder.training import PairLine, train_encoder, write_pairs


def _query(item: SliceInput) -> str:
    return ". ".join(text for text in item.text_fields().values() if text)


def _text_only(item: SliceInput) -> SliceLine:
    fields = msgspec.structs.asdict(item) | {"frames": []}
    return SliceLine(**fields)


def co_like_pairs(data: Dataset, cutoff: float, per_user: int, seed: int) -> list[PairLine]:
    """At most ``per_user`` (liked item -> next liked item) pairs per user, before ``cutoff``."""
    rng = np.random.default_rng(seed)
    liked = (data.label > 0) & (data.ts < cutoff)
    sequences: dict[str, list[int]] = {}
    for user, item in zip(data.user[liked].tolist(), data.item[liked].tolist(), strict=True):
        sequences.setdefault(user, []).append(item)
    pairs = []
    for user in sorted(sequences):
        steps = [(a, b) for a, b in itertools.pairwise(sequences[user]) if a != b]
        for k in sorted(rng.permutation(len(steps))[:per_user].tolist()):
            query, target = steps[k]
            pairs.append(
                PairLine(
                    query=_query(data.slices[query]),
                    slice=_text_only(data.slices[target]),
                    group=f"user-{user}",
                )
            )
    return pairs


def check_pairs(pairs: list[PairLine], settings: EncoderSettings, needed_by: str) -> None:
    """Q2I training makes batches of ``train.batch_size`` pairs and holds some out: fewer than
    two batches' worth cannot train it. ``needed_by`` names the variant, for the message."""
    needed = 2 * settings.train.batch_size
    if len(pairs) < needed:
        raise EvaluationError(
            f"variant {needed_by}: only {len(pairs)} Q2I pairs (a user's liked item -> next "
            f"liked item) before the cutoff, the middle of the time range; it needs at least "
            f"{needed} (2 x encoder.train.batch_size): replay more events (a larger "
            f"--max-events), lower encoder.train.batch_size or drop {needed_by} from --variants"
        )


def train_on_first_half(
    data: Dataset,
    cutoff: float,
    settings: EncoderSettings,
    work_dir: Path,
    *,
    per_user: int,
    seed: int,
    progress: bool,
) -> tuple[Path, dict[str, Any]]:
    """Train a text-only encoder on the first half's pairs; its folder and recall report."""
    pairs = co_like_pairs(data, cutoff, per_user, seed)
    check_pairs(pairs, settings, "lucid_q2i")
    work_dir.mkdir(parents=True, exist_ok=True)
    write_pairs(pairs, work_dir / "q2i-pairs.jsonl")
    out = work_dir / "encoder-q2i"
    if out.exists():  # this run's own output folder, left by an earlier run into the same --out
        shutil.rmtree(out)
    settings = msgspec.structs.replace(
        settings, vision=msgspec.structs.replace(settings.vision, path=None), checkpoint=None
    )
    report = train_encoder(settings, work_dir / "q2i-pairs.jsonl", out, progress=progress)
    return out / f"encoder-{settings.train.stages[-1]}", {"pairs": len(pairs), "recall": report}
