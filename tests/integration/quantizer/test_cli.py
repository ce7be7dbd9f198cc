"""The three quantizer commands end to end, through the installed ``lucidrec`` script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from quantizer import Codebook
from tests.conftest import clustered_vectors

LUCIDREC = [sys.executable, "-m", "api.cli"]


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LUCIDREC_")}
    return subprocess.run(
        [*LUCIDREC, "--config", "test", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    x = clustered_vectors(3000, 16, 30, seed=3)
    np.save(tmp_path / "emb.npy", x)
    (tmp_path / "shards").mkdir()
    for i, part in enumerate(np.array_split(x, 3)):
        np.save(tmp_path / "shards" / f"{i:03d}.npy", part)
    return tmp_path


def test_retrain_encode_report_end_to_end(workdir: Path) -> None:
    first = run(
        "quantizer", "retrain", "--embeddings", "emb.npy", "--out", "cb1", "--quiet", cwd=workdir
    )
    assert first.returncode == 0, first.stderr
    assert "wrote codebook" in first.stdout and "perplexity" in first.stdout
    second = run(
        "quantizer",
        "retrain",
        "--embeddings",
        "shards",
        "--out",
        "cb2",
        "--parent",
        "cb1",
        "--seed",
        "9",
        "--quiet",
        cwd=workdir,
    )
    assert second.returncode == 0, second.stderr
    assert "churn" in second.stdout
    cb1, cb2 = Codebook.load(workdir / "cb1"), Codebook.load(workdir / "cb2")
    assert cb2.parent_version == cb1.version and (cb2.levels, cb2.codes) == (3, 8)
    assert cb2.report is not None and cb2.report["per_level"][0]["churn"] < 0.1

    enc = run(
        "quantizer",
        "encode",
        "--codebook",
        "cb2",
        "--embeddings",
        "emb.npy",
        "--out",
        "codes.npy",
        "--quiet",
        cwd=workdir,
    )
    assert enc.returncode == 0, enc.stderr
    codes = np.load(workdir / "codes.npy")
    np.testing.assert_array_equal(codes, cb2.encode(np.load(workdir / "emb.npy")))

    rep = run(
        "quantizer",
        "report",
        "--codebook",
        "cb2",
        "--embeddings",
        "shards",
        "--parent",
        "cb1",
        "--json",
        "r.json",
        "--quiet",
        cwd=workdir,
    )
    assert rep.returncode == 0, rep.stderr
    report = json.loads((workdir / "r.json").read_text())
    assert report["n_vectors"] == 3000 and len(report["per_level"]) == 3
    assert report["per_level"] == cb2.report["per_level"]


def test_every_command_has_help(workdir: Path) -> None:
    for command in (
        [],
        ["quantizer"],
        ["quantizer", "retrain"],
        ["quantizer", "encode"],
        ["quantizer", "report"],
        ["config", "show"],
    ):
        result = run(*command, "--help", cwd=workdir)
        assert result.returncode == 0 and "Usage:" in result.stdout


@pytest.mark.parametrize(
    ("make_input", "extra", "message"),
    [
        (
            lambda d: np.save(d / "in.npy", np.full((100, 16), np.nan, np.float32)),
            [],
            "row 0 holds NaN or inf",
        ),
        (
            lambda d: np.save(d / "in.npy", np.ones((5, 16), np.float32)),
            [],
            "5 vectors cannot fit 8 centroids",
        ),
        (lambda d: (d / "in.npy").write_bytes(b""), [], "not a readable .npy"),
        (
            lambda d: np.save(d / "in.npy", np.ones((50, 16), np.float32)),
            ["--codes", "1"],
            "codes: expected `int` >= 2",
        ),
        (lambda d: (d / "out").mkdir(), [], "already exists"),
    ],
)
def test_bad_retrain_input_gets_a_message_and_writes_nothing(
    workdir: Path, make_input, extra: list[str], message: str
) -> None:
    make_input(workdir)
    source = "in.npy" if (workdir / "in.npy").exists() else "emb.npy"
    before = sorted(p.name for p in workdir.iterdir())
    result = run(
        "quantizer",
        "retrain",
        "--embeddings",
        source,
        "--out",
        "out",
        "--quiet",
        *extra,
        cwd=workdir,
    )
    assert result.returncode == 1
    assert message in result.stderr and "Traceback" not in result.stderr
    assert sorted(p.name for p in workdir.iterdir()) == before


def test_encode_with_wrong_dimension_writes_nothing(workdir: Path) -> None:
    assert (
        run(
            "quantizer", "retrain", "--embeddings", "emb.npy", "--out", "cb", "--quiet", cwd=workdir
        ).returncode
        == 0
    )
    np.save(workdir / "wide.npy", np.ones((10, 17), np.float32))
    result = run(
        "quantizer",
        "encode",
        "--codebook",
        "cb",
        "--embeddings",
        "wide.npy",
        "--out",
        "c.npy",
        cwd=workdir,
    )
    assert result.returncode == 1 and "codebook expects 16" in result.stderr
    assert not (workdir / "c.npy").exists()
    assert not list(workdir.glob(".c.npy*"))


def test_damaged_codebook_is_refused_by_the_command(workdir: Path) -> None:
    assert (
        run(
            "quantizer", "retrain", "--embeddings", "emb.npy", "--out", "cb", "--quiet", cwd=workdir
        ).returncode
        == 0
    )
    (workdir / "cb" / "centroids.safetensors").write_bytes(b"garbage")
    result = run("quantizer", "report", "--codebook", "cb", "--embeddings", "emb.npy", cwd=workdir)
    assert result.returncode == 1 and "damaged codebook" in result.stderr
