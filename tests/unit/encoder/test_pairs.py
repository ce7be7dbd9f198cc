"""The pairs file format, the held-out split by group, and domain-mixed batches."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from encoder.errors import EncoderError
from encoder.slices import SliceInput, SliceLine
from encoder.training.pairs import (
    Pair,
    PairLine,
    mixed_batches,
    read_pairs,
    split_by_group,
    write_pairs,
)


def test_pairs_round_trip_and_frame_paths_resolve_against_the_file(tmp_path: Path) -> None:
    lines = [
        PairLine(query="q1", slice=SliceLine(slice_id="a", frames=["f/a.jpg"]), group="g"),
        PairLine(query="q2", slice=SliceLine(slice_id="b", title="t", domain="live")),
    ]
    write_pairs(lines, tmp_path / "pairs.jsonl")
    pairs = read_pairs(tmp_path / "pairs.jsonl")
    assert [p.query for p in pairs] == ["q1", "q2"]
    assert pairs[0].slice.frames == [str(tmp_path.resolve() / "f/a.jpg")]
    assert pairs[0].group == "g" and pairs[0].domain == "default" and pairs[1].domain == "live"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"query": "x", "slice": {"slice_id": "a"}}\n{"query": 3}\n', r"pairs.jsonl:2: "),
        ('{"query": "x", "slice": {"slice_id": "a"}, "room": 1}\n', r":1: Object contains unknown"),
        ('{"query": "x", "slice": {"slice_id": "a"}}\n', "1 pair"),
    ],
)
def test_bad_pair_files_name_the_line(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "pairs.jsonl"
    path.write_text(content)
    with pytest.raises(EncoderError, match=message):
        read_pairs(path)


def _pairs(groups: list[str | None], domains: list[str] | None = None) -> list[Pair]:
    domains = domains or ["default"] * len(groups)
    return [
        Pair(query=f"q{i}", slice=SliceInput(slice_id=f"s{i}", domain=d), group=g)
        for i, (g, d) in enumerate(zip(groups, domains, strict=True))
    ]


def test_split_keeps_every_group_on_one_side() -> None:
    pairs = _pairs([f"u{i % 10}" for i in range(60)] + [None] * 10)
    train, held = split_by_group(pairs, 0.3, seed=1)
    assert len(train) + len(held) == 70
    assert not {p.group for p in train} & {p.group for p in held} - {None}
    assert 10 <= len(held) <= 35


def test_split_refuses_what_cannot_be_held_out() -> None:
    with pytest.raises(EncoderError, match="cannot hold out"):
        split_by_group(_pairs(["u1", "u1"]), 0.2, seed=0)


def test_batches_mix_domains_in_proportion_and_cover_every_pair_once() -> None:
    pairs = _pairs([None] * 90, ["live"] * 60 + ["short_video"] * 30)
    batches = mixed_batches(pairs, 9, np.random.default_rng(0))
    assert sorted(i for b in batches for i in b) == list(range(90))
    for batch in batches:
        counts = Counter(pairs[i].domain for i in batch)
        assert 4 <= counts["live"] <= 8 and 1 <= counts["short_video"] <= 5


def test_a_lone_last_pair_joins_the_previous_batch() -> None:
    batches = mixed_batches(_pairs([None] * 9), 4, np.random.default_rng(0))
    assert [len(b) for b in batches] == [4, 5]
