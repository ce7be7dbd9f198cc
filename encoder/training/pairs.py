"""Query-to-item training pairs: the JSONL format, the held-out split, domain-mixed batches.

A pairs file holds one JSON object per line::

    {"query": "cosy cooking stream, pasta", "group": "room-17",
     "slice": {"slice_id": "r17-0004", "title": "...", "asr": "...",
               "frames": ["frames/r17-0004.jpg"], "domain": "live"}}

``slice`` is a slice line as in the slices format (frame paths relative to the
pairs file); ``group`` (optional) names what makes two items positives of each
other's queries, such as the same room or the same user: in-batch items of the
same group, of the same query text, or the same slice are masked out of a
query's negatives. The slice's ``domain`` (default ``default``) is what batches
mix over.
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import msgspec
import numpy as np

from encoder.errors import EncoderError
from encoder.slices import SliceInput, SliceLine, iter_jsonl


class PairLine(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """One line of a pairs file."""

    query: str
    slice: SliceLine
    group: str | None = None


@dataclass(frozen=True)
class Pair:
    """A query and the slice it should retrieve."""

    query: str
    slice: SliceInput
    group: str | None = None

    @property
    def domain(self) -> str:
        return self.slice.domain or "default"


def read_pairs(path: str | os.PathLike[str]) -> list[Pair]:
    """All pairs of a JSONL file; frame paths resolve against the file's folder."""
    base = Path(path).resolve().parent
    pairs = [
        Pair(query=line.query, slice=line.slice.to_input(base), group=line.group)
        for line in iter_jsonl(path, PairLine)
    ]
    if len(pairs) < 2:
        raise EncoderError(f"{path}: {len(pairs)} pair(s); contrastive training needs at least 2")
    return pairs


def write_pairs(pairs: list[PairLine], path: str | os.PathLike[str]) -> None:
    """Write pair lines as JSONL."""
    encoder = msgspec.json.Encoder()
    with Path(path).open("wb") as fh:
        for pair in pairs:
            fh.write(encoder.encode(pair) + b"\n")


def split_by_group(pairs: list[Pair], fraction: float, seed: int) -> tuple[list[Pair], list[Pair]]:
    """(train, held-out): whole groups go to one side, so held-out queries are unseen groups."""
    keys = sorted({p.group if p.group is not None else f"#{i}" for i, p in enumerate(pairs)})
    rng = np.random.default_rng(seed)
    held = set(rng.permutation(keys)[: round(len(keys) * fraction)].tolist())
    train, test = [], []
    for i, pair in enumerate(pairs):
        key = pair.group if pair.group is not None else f"#{i}"
        (test if key in held else train).append(pair)
    if not train or (fraction > 0 and not test):
        raise EncoderError(
            f"cannot hold out {fraction:.0%} of {len(keys)} group(s); give more pairs or groups, "
            "or a separate eval file"
        )
    return train, test


def mixed_batches(pairs: list[Pair], batch_size: int, rng: np.random.Generator) -> list[list[int]]:
    """Shuffled batches of indices in which every domain appears in proportion to its size.

    Each domain's pairs are shuffled and spread evenly over the epoch (item i of
    a domain of n sits at (i + u) / n), so no batch is one domain only when others
    are large enough to reach it.
    """
    by_domain: dict[str, list[int]] = defaultdict(list)
    for index, pair in enumerate(pairs):
        by_domain[pair.domain].append(index)
    keyed: list[tuple[float, int]] = []
    for indices in by_domain.values():
        order = rng.permutation(indices)
        offsets = (np.arange(len(order)) + rng.random(len(order))) / len(order)
        keyed.extend(zip(offsets.tolist(), order.tolist(), strict=True))
    keyed.sort()
    flat = [index for _, index in keyed]
    batches = [flat[i : i + batch_size] for i in range(0, len(flat), batch_size)]
    # A last batch of one has no negatives: fold it into the previous one.
    if len(batches) > 1 and len(batches[-1]) < 2:
        batches[-2].extend(batches.pop())
    return batches
