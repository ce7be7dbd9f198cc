"""The open_clip backend, run in its own environment (``.venv-openclip``): torchvision,
which open_clip needs, must not be installed into .venv, where it breaks transformers.

Make the environment with ``make openclip-env`` (see CONTRIBUTING.md); without it this skips."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from bench.common import DEFAULT_DATA, REPO

PYTHON = REPO / ".venv-openclip" / "bin" / "python"
SCRIPT = Path(__file__).with_name("openclip_check.py")


@pytest.mark.skipif(not PYTHON.is_file(), reason="no .venv-openclip (make openclip-env creates it)")
def test_open_clip_vit_from_a_local_checkpoint_encodes_slices(tmp_path: Path) -> None:
    posters = [str(DEFAULT_DATA / "posters" / f"{i}.jpg") for i in (1, 2)]
    frames = [p for p in posters if Path(p).is_file()]
    env = {k: v for k, v in os.environ.items() if not k.startswith("LUCIDREC_")}
    result = subprocess.run(
        [str(PYTHON), str(SCRIPT), str(tmp_path), *frames],
        cwd=REPO,
        env=env | {"HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["shape"] == [4, 128]
    assert all(abs(n - 1.0) < 1e-5 for n in report["norms"])
    assert report["pixel_shape"] == [1, 3, 32, 32]  # open_clip's own resize and crop
    assert report["hidden_size"] == 32
    assert report["frames_change_embedding"]
    assert report["reload_max_diff"] < 1e-5
    assert report["saved_vision"] == ["open_clip_visual.safetensors"]
    assert report["frame_stats"]["dropped"] == {"corrupt": 1}
