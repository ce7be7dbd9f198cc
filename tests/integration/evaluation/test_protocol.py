"""The whole protocol on tiny generated logs, with a stand-in encoder (seconds, not minutes).

The stand-in returns fixed random unit vectors, so these tests check the protocol's
plumbing (rooms, sampled impressions, probes, subsets, comparisons, report files,
the fail-fast checks), not what a real encoder's codes are worth; the MovieLens
test in test_replay.py runs the real encoders.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from api.cli import cli
from api.evaluation import Dataset, EvaluationError, ReplayConfig, run_protocol
from api.evaluation.codes import ItemCodes
from configs import load_settings
from tests.unit.evaluation.helpers import random_dataset

SMALL_RANKER = {
    "tasks": {"names": ["click"]},
    "sparse": {"dim": 8, "ttl_s": 1e9},
    "backbone": {"width": 16, "layers": 1, "heads": 2},
    "history": {"length": 10},
    "training": {"batch_size": 128},
    "warmup": {"id_on_steps": 5, "id_ramp_steps": 5},
    "engagement": {"half_lives_s": [3600.0, 86400.0, 2592000.0]},
}


def _random_unit_vectors(self: ItemCodes, encoder: str) -> np.ndarray:
    if encoder not in self._embeddings:
        rng = np.random.default_rng(0)
        x = rng.normal(size=(len(self.data.slices), self.encoder_settings.out_dim))
        self._embeddings[encoder] = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(
            np.float32
        )
    return self._embeddings[encoder]


def _no_encoding(self: ItemCodes, encoder: str) -> np.ndarray:
    raise AssertionError(f"encoded {encoder} before the prerequisites failed")


def _write_interactions(folder: Path, n: int, n_users: int, n_items: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    folder.mkdir()
    items = [{"item_id": f"i{i}", "title": f"room {i}", "tags": ["t"]} for i in range(n_items)]
    (folder / "items.jsonl").write_text("".join(json.dumps(i) + "\n" for i in items))
    ts = np.sort(rng.random(n) * 20 * 86400.0) + 1.7e9
    rows = [
        f"u{rng.integers(n_users)},i{rng.integers(n_items)},{t:.0f},{int(rng.random() < 0.5)}\n"
        for t in ts
    ]
    (folder / "interactions.csv").write_text("user_id,item_id,timestamp,label\n" + "".join(rows))
    return folder


def test_cli_report_holds_the_comparisons_and_the_sampled_impressions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ItemCodes, "embeddings", _random_unit_vectors)
    data = _write_interactions(tmp_path / "data", n=1500, n_users=30, n_items=160, seed=0)
    variants = "id_only,stats_only,dense_content,popularity"
    args = ["eval", "replay", "--dataset", "interactions", "--data-dir", str(data)]
    args += ["--out", str(tmp_path / "out"), "--variants", variants, "--negatives", "2"]
    result = CliRunner().invoke(cli, [*args, "--quiet", "--codes", "8"])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    counts = report["counts"]
    assert report["config"]["negatives_per_event"] == 2
    assert report["config"]["room_window_s"] is None
    assert counts["rooms"] == 160 and 0 < counts["sampled_impressions"] <= 2 * 1500
    assert counts["probes"] > 20 and counts["ranking_cold_probes"] <= counts["probes"]
    assert report["popularity_half_life_s"] == 2592000.0
    assert list(report["comparisons"]) == ["stats_only", "dense_content", "popularity"]
    subsets = {
        "all": {"auc", "gauc", "logloss"},
        "cold": {"auc", "gauc", "logloss"},
        "first": {"auc", "gauc", "logloss"},
        "ranking": {"ndcg@10", "recall@10"},
        "ranking_cold": {"ndcg@10", "recall@10"},
    }
    for name, comparison in report["comparisons"].items():
        assert {k: set(v) for k, v in comparison.items()} == subsets, name
        cell = comparison["all"]["auc"]
        assert set(cell) == {"diff", "low", "high"} and cell["low"] <= cell["diff"] <= cell["high"]
    for name, result_ in report["variants"].items():
        assert {k: set(v) for k, v in result_["metrics"].items()} == subsets, name
    popularity = report["variants"]["popularity"]
    assert popularity["metrics"]["all"]["logloss"]["value"] is None
    assert popularity["half_life_s"] == 2592000.0 and popularity["ranker"] is None
    assert report["comparisons"]["popularity"]["all"]["logloss"]["diff"] is None
    assert report["variants"]["dense_content"]["ranker"]["content_dim"] == 128
    markdown = (tmp_path / "out" / "report.md").read_text()
    assert "## Paired comparisons against id_only" in markdown
    assert "K = 2 per logged event" in markdown and "half-life of 2.592e+06 s" in markdown
    assert "ranking_cold ndcg@10" in markdown and "| popularity |" in markdown


def test_room_window_rekeys_rooms_and_ranking_cold_restricts_the_probes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ItemCodes, "embeddings", _random_unit_vectors)
    data = random_dataset(2000, n_users=30, n_items=40, span_s=20 * 86400.0, seed=1)
    settings = load_settings("test")

    def run(cold_threshold: int) -> dict[str, Any]:
        config = ReplayConfig(
            variants=("id_only", "lucid_only", "popularity"),
            codes=8,
            room_window_s=86400.0,
            probe_negatives=3,
            negatives_per_event=2,
            resamples=50,
            cold_threshold=cold_threshold,
            ranker=SMALL_RANKER,
        )
        return run_protocol(data, config, settings.ranker, settings.encoder, tmp_path, False)

    report = run(cold_threshold=2)  # rooms hold 2.5 events on average: some probes are warm
    counts = report["counts"]
    # about 2.5 events per item and day: each item lives in one room a day
    assert 500 < counts["rooms"] < 800 and counts["room_window_s"] == 86400.0
    assert counts["first_seen_events"] == counts["rooms"]
    assert counts["probes"] > 20 and 0 < counts["ranking_cold_probes"] < counts["probes"]
    assert "--room-window 86400 s" in report["notes"][0]
    # once every room counts as cold, ranking_cold is the ranking, to the last digit
    everything_cold = run(cold_threshold=10**6)
    assert everything_cold["counts"]["ranking_cold_probes"] == counts["probes"]
    for result in everything_cold["variants"].values():
        assert result["metrics"]["ranking_cold"] == result["metrics"]["ranking"]


def test_prerequisites_fail_before_anything_is_encoded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ItemCodes, "embeddings", _no_encoding)
    settings = load_settings("test")

    def run(data: Dataset, **config: Any) -> dict[str, Any]:
        return run_protocol(
            data, ReplayConfig(**config), settings.ranker, settings.encoder, tmp_path, False
        )

    few_liked = random_dataset(400, n_users=200, n_items=100, span_s=86400.0, seed=2)
    with pytest.raises(EvaluationError, match=r"variant lucid_q2i: only \d+ Q2I pairs"):
        run(few_liked, variants=("popularity", "lucid_q2i"))
    few_items = random_dataset(400, n_users=20, n_items=10, span_s=86400.0, seed=3)
    with pytest.raises(EvaluationError, match="id_only, stats_only: the codebook is fitted"):
        run(few_items, variants=("id_only", "random_codes", "stats_only", "popularity"))
    with pytest.raises(EvaluationError, match="events are too few"):
        run(few_items.head(50), variants=("popularity",))
    # random codes and popularity need no encoder and no codebook fit: they run
    report = run(few_items, variants=("random_codes", "popularity"), resamples=10)
    assert set(report["variants"]) == {"random_codes", "popularity"}
    assert report["comparisons"] == {}  # no id_only, nothing to compare with
