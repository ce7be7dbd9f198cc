"""``lucidrec encode`` and ``lucidrec encoder movielens-pairs`` end to end, as a subprocess,
with real MovieLens posters as frames and a tiny SigLIP checkpoint folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bench.common import DEFAULT_DATA
from tests.unit.encoder.checkpoints import save_tiny_siglip

LUCIDREC = [sys.executable, "-m", "api.cli"]
POSTERS = DEFAULT_DATA / "posters"

pytestmark = pytest.mark.skipif(
    not POSTERS.is_dir(), reason=f"research data not found at {DEFAULT_DATA}"
)


def run(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("LUCIDREC_")}
    return subprocess.run(
        [*LUCIDREC, "--config", "test", *args],
        cwd=cwd,
        env=base | (env or {}) | {"HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("encode")
    save_tiny_siglip(root / "siglip")
    slices = [
        {
            "slice_id": "toy-story",
            "title": "Toy Story (1995)",
            "tags": ["Animation"],
            "frames": [str(POSTERS / "1.jpg")],
        },
        {
            "slice_id": "two-frames",
            "title": "GoldenEye",
            "asr": "James Bond must unmask...",
            "frames": [str(POSTERS / "2.jpg"), str(POSTERS / "3.jpg")],
        },
        {"slice_id": "text-only", "comments": ["great stream", "hi"], "author": "chef"},
    ]
    (root / "slices.jsonl").write_text("".join(json.dumps(s) + "\n" for s in slices))
    return root


def test_encode_writes_unit_vectors_in_file_order(workdir: Path) -> None:
    env = {"LUCIDREC_ENCODER__VISION__PATH": str(workdir / "siglip")}
    result = run(
        "encode", "--input", "slices.jsonl", "--out", "z.npy", "--quiet", cwd=workdir, env=env
    )
    assert result.returncode == 0, result.stderr
    assert "wrote 3 x 128 embeddings to z.npy" in result.stdout
    z = np.load(workdir / "z.npy")
    assert z.dtype == np.float32 and z.shape == (3, 128)
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1.0, rtol=1e-5)

    again = run("encode", "--input", "slices.jsonl", "--out", "z.npy", cwd=workdir, env=env)
    assert again.returncode == 1 and "z.npy already exists" in again.stderr


def test_a_text_only_encode_says_how_many_frames_it_ignored(workdir: Path) -> None:
    lines = (workdir / "slices.jsonl").read_text().splitlines()
    frames = sum(len(json.loads(line).get("frames", [])) for line in lines)
    result = run("encode", "--input", "slices.jsonl", "--out", "t.npy", "--quiet", cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert f"{frames} frames ignored: the encoder has no vision tower" in result.stdout


@pytest.mark.parametrize("towers", ["text and vision", "text only"])
def test_encode_names_the_slice_whose_frame_is_missing_and_writes_nothing(
    workdir: Path, towers: str
) -> None:
    bad = workdir / "bad.jsonl"
    bad.write_text(json.dumps({"slice_id": "lost", "frames": ["missing/poster.jpg"]}) + "\n")
    # the text-only encoder never opens a frame: the file's bad path still stops it
    env = (
        {"LUCIDREC_ENCODER__VISION__PATH": str(workdir / "siglip")} if towers != "text only" else {}
    )
    result = run("encode", "--input", "bad.jsonl", "--out", "bad.npy", cwd=workdir, env=env)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "slice 'lost': frame" in result.stderr and "poster.jpg' is not a file" in result.stderr
    assert not (workdir / "bad.npy").exists()


@pytest.mark.parametrize(
    ("content", "env", "message"),
    [
        ('{"title": "no id"}\n', {}, "bad2.jsonl:1: Object missing required field `slice_id`"),
        ('{"slice_id": "a"}\n', {"LUCIDREC_ENCODER__VISION__PATH": "/nowhere"}, "no config.json"),
        (
            '{"slice_id": "a"}\n',
            {"LUCIDREC_ENCODER__VISION__TOKENS_PER_FRAME": "0"},
            "encoder.vision.tokens_per_frame: expected `int` >= 1",
        ),
    ],
)
def test_bad_input_and_settings_get_one_line(workdir: Path, content, env, message) -> None:
    (workdir / "bad2.jsonl").write_text(content)
    result = run("encode", "--input", "bad2.jsonl", "--out", "o.npy", cwd=workdir, env=env)
    assert result.returncode == 1 and message in result.stderr
    assert "Traceback" not in result.stderr


def test_movielens_pairs_are_written_with_poster_frames(tmp_path: Path) -> None:
    result = run(
        "encoder",
        "movielens-pairs",
        "--data-dir",
        str(DEFAULT_DATA),
        "--out",
        "pairs.jsonl",
        "--kind",
        "co-like",
        "--users",
        "5",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in (tmp_path / "pairs.jsonl").read_text().splitlines()]
    assert 5 <= len(lines) <= 10 and len({line["group"] for line in lines}) == 5
    assert all(
        Path(line["slice"]["frames"][0]).is_file() for line in lines if line["slice"].get("frames")
    )


def test_every_encoder_command_has_help(tmp_path: Path) -> None:
    for command in (["encode"], ["encoder"], ["encoder", "train"], ["encoder", "movielens-pairs"]):
        result = run(*command, "--help", cwd=tmp_path)
        assert result.returncode == 0 and "Usage:" in result.stdout
