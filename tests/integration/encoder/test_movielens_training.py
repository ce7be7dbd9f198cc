"""The real-data check: a short two-stage run on MovieLens posters and text lowers the loss
and raises held-out recall@10 over the untrained encoder (real MiniLM, posters as frames
through a tiny SigLIP). About two minutes on 2 CPU cores."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.common import DEFAULT_DATA
from tests.unit.encoder.checkpoints import save_tiny_siglip

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (DEFAULT_DATA / "items.csv").is_file(), reason=f"no research data at {DEFAULT_DATA}"
    ),
]

CONFIG = """
encoder:
  device: cpu
  vision: {{path: {siglip}, max_frames: 1, tokens_per_frame: 4}}
  text: {{max_length: 48}}
  train:
    stages: [align, joint]
    batch_size: 32
    query_max_length: 48
    eval_fraction: 0.25
    recall_k: [10]
    align: {{epochs: 2, lr: 0.005}}
    joint: {{epochs: 1, lr: 0.0025, text_lr: 0.00005, text_layers: 1}}
"""


def lucidrec(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LUCIDREC_")}
    result = subprocess.run(
        [sys.executable, "-m", "api.cli", "--config", "enc.yaml", *args],
        cwd=cwd,
        env=env | {"HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_short_training_on_movielens_lowers_loss_and_raises_recall(tmp_path: Path) -> None:
    save_tiny_siglip(tmp_path / "siglip")
    (tmp_path / "enc.yaml").write_text(CONFIG.format(siglip=tmp_path / "siglip"))
    lucidrec(
        "encoder",
        "movielens-pairs",
        "--data-dir",
        str(DEFAULT_DATA),
        "--out",
        "pairs.jsonl",
        "--movies",
        "400",
        cwd=tmp_path,
    )
    result = lucidrec(
        "encoder", "train", "--pairs", "pairs.jsonl", "--out", "run", "--quiet", cwd=tmp_path
    )
    assert "joint: recall@10" in result.stdout

    report = json.loads((tmp_path / "run" / "report.json").read_text())
    untrained = report["untrained"]["recall@10"]
    assert report["align"]["recall@10"] > untrained + 0.1
    assert report["joint"]["recall@10"] > untrained + 0.1

    steps = [
        json.loads(line) for line in (tmp_path / "run" / "loss.jsonl").read_text().splitlines()
    ]
    first_epoch = [s["loss"] for s in steps if s["stage"] == "align" and s["epoch"] == 0]
    last_epoch = [s["loss"] for s in steps if s["stage"] == "align" and s["epoch"] == 1]
    assert sum(last_epoch) / len(last_epoch) < sum(first_epoch) / len(first_epoch) - 0.3
    assert (tmp_path / "run" / "encoder-joint" / "text").is_dir()
