"""A short replay on a small real MovieLens sample writes a complete report for every variant.

The sample is 3000 ratings of 60 movies (read from ../shared/data by path), with 2
sampled impressions per rating; the ranker and codebook are small, the multimodal
variant uses the small random SigLIP tower, and the Q2I training is one short
align stage; it takes under a minute on two idle cores.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import msgspec
import numpy as np
import pytest
from click.testing import CliRunner

from api.cli import cli
from api.evaluation import VARIANTS, ReplayConfig, run_protocol, write_report
from api.evaluation.adapters import MovieLensTmdb
from api.evaluation.report import COLUMNS
from configs import load_settings

DATA = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "movielens100k_tmdb"
SMALL_RANKER = {
    "tasks": {"names": ["click"]},
    "sparse": {"dim": 8, "ttl_s": 1e9},
    "backbone": {"width": 16, "layers": 1, "heads": 2},
    "history": {"length": 10},
    "training": {"batch_size": 128},
    "warmup": {"id_on_steps": 5, "id_ramp_steps": 5},
}

pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason=f"needs the dataset at {DATA}")


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def test_short_replay_reports_finite_metrics_for_every_variant(tmp_path: Path) -> None:
    full = MovieLensTmdb().load(DATA)
    sample = full.subset(full.item < 60)
    sample = sample.head(3000)
    config = ReplayConfig(
        variants=tuple(VARIANTS),  # the default eight and the three on request
        levels=2,
        codes=8,
        max_probes=150,
        probe_negatives=20,
        negatives_per_event=2,
        resamples=30,
        ranker=SMALL_RANKER,
    )
    settings = load_settings("test")
    q2i = msgspec.structs.replace(
        settings.encoder.train, stages=["align"], batch_size=8, eval_fraction=0.2
    )
    encoder = msgspec.structs.replace(settings.encoder, train=q2i)
    report = run_protocol(sample, config, settings.ranker, encoder, tmp_path / "w", progress=False)
    paths = write_report(report, tmp_path / "out")
    assert [p.name for p in paths] == [
        "report.json",
        "report.md",
        "metrics_over_time.png",
        "code_usage.png",
    ]
    assert all(p.stat().st_size > 0 for p in paths)
    assert paths[2].read_bytes()[:4] == b"\x89PNG"
    saved = json.loads(paths[0].read_text())
    assert list(saved["variants"]) == list(VARIANTS)
    counts = saved["counts"]
    assert counts["events"] == 3000 and counts["probes"] > 50 and counts["rooms"] == 60
    assert counts["sampled_impressions"] > 2 * 3000 * 0.9
    for name, result in saved["variants"].items():
        for subset, metric in COLUMNS:
            cell = result["metrics"][subset][metric]
            if (name, metric) == ("popularity", "logloss"):  # counts are no probabilities
                assert cell == {"value": None, "low": None, "high": None}
                continue
            if subset == "ranking_cold" and not counts["ranking_cold_probes"]:
                continue
            assert all(isinstance(v, float) and math.isfinite(v) for v in cell.values()), (
                name,
                subset,
                metric,
                cell,
            )
        curves = result["by_period"]
        assert set(curves) == {"auc", "gauc", "logloss"}
        assert all(len(c) == saved["config"]["periods"] for c in curves.values())
        assert all(math.isfinite(v) for c in (curves["auc"], curves["gauc"]) for v in c)
        if name != "popularity":
            assert all(math.isfinite(v) for v in curves["logloss"])
            assert result["ranker"]["tasks"]["names"] == ["click"]
    assert saved["variants"]["dense_content"]["ranker"]["content_dim"] == 128
    assert set(saved["comparisons"]) == set(VARIANTS) - {"id_only"}
    assert set(saved["code_usage"]) == {"text", "random", "multimodal", "text_q2i"}
    assert saved["q2i_training"]["pairs"] >= 16 and "align" in saved["q2i_training"]["recall"]
    markdown = paths[1].read_text()
    assert all(f"| {name} |" in markdown for name in VARIANTS)
    assert "RANDOM weights" in markdown
    # the ID-free variants share nothing with id_only but the events: scores must differ
    aucs = {name: r["metrics"]["all"]["auc"]["value"] for name, r in saved["variants"].items()}
    assert len({round(a, 6) for a in aucs.values()}) > 5
    assert np.isfinite(list(aucs.values())).all()


def test_cli_reports_bad_variants_and_bad_files_cleanly(tmp_path: Path) -> None:
    runner = CliRunner()
    args = ["eval", "replay", "--dataset", "interactions", "--data-dir", str(tmp_path)]
    result = runner.invoke(cli, [*args, "--out", str(tmp_path / "o"), "--variants", "bogus"])
    assert result.exit_code == 1 and "unknown variant(s) ['bogus']" in result.output
    help_text = runner.invoke(cli, ["eval", "replay", "--help"]).output
    assert "--negatives" in help_text and "--room-window" in help_text
    (tmp_path / "items.jsonl").write_text('{"item_id": "a", "title": "x"}\n')
    (tmp_path / "interactions.csv").write_text("user_id,item_id,timestamp,label\nu,b,1,1\n")
    result = runner.invoke(cli, [*args, "--out", str(tmp_path / "o")])
    assert result.exit_code == 1
    assert "interactions.csv, line 2: unknown item_id 'b'" in result.output
