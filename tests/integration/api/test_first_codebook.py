"""A fresh ``lucidrec serve`` without ``--demo`` (the API and its embedded worker, the test
profile: the first codebook needs ``quantizer.codes`` = 8 slices): ``/ready`` says no
codebook exists and how to get one; slices posted through the API alone bring the first
codebook (maintenance fits it by itself), then ``/ready`` is 200 and rooms have codes and
rank. ``/v1/model`` and the start-up log name the encoder's towers (text-only here)."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from encoder.towers.description import PACKAGED_TEXT
from tests.integration.api.conftest import AUTH, api_env, start_server, stop, wait_until
from tests.integration.workers.harness import png

MAINTENANCE_S = 2  # the beat's interval here (30 s by default)


def post(c: httpx.Client, room: str, start: int, count: int) -> str:
    """``count`` slices of ``room`` stamped now, a frame each; the task's status URL."""
    now = time.time()
    body = {
        "slices": [
            {
                "slice_id": f"{room}-{i}",
                "ts": now - (count - i),
                "title": f"{room} live",
                "asr": f"{room} talk, part {i}",
                "frames": [{"data": png(i)}],
            }
            for i in range(start, start + count)
        ]
    }
    response = c.post(f"/v1/rooms/{room}/slices", headers=AUTH, json=body)
    assert response.status_code == 202, response.text
    return response.json()["status_url"]


def finished(c: httpx.Client, url: str) -> dict:
    return wait_until(
        lambda: (s := c.get(url).json())["state"] in ("SUCCESS", "FAILURE") and s, 120, 0.2
    )


def ready_detail(c: httpx.Client) -> str:
    response = c.get("/ready")
    if response.status_code == 200:
        return ""
    assert response.status_code == 503
    assert response.headers["content-type"].startswith("application/problem+json")
    return response.json()["detail"]


def test_a_fresh_service_names_the_missing_codebook_and_fits_it_by_itself(tmp_path: Path) -> None:
    env = api_env(tmp_path, LUCIDREC_WORKERS__MAINTENANCE_INTERVAL_S=str(MAINTENANCE_S))
    env.pop("LUCIDREC_EXPERIMENTS_FILE")
    log = tmp_path / "serve.log"
    url, proc = start_server(env, log)
    try:
        with httpx.Client(base_url=url, timeout=30) as c:
            # the worker is up; what is missing is the codebook, and the detail says how
            detail = wait_until(lambda: "codebook" in (d := ready_detail(c)) and d, 120, 0.2)
            assert detail.startswith("no codebook yet")
            assert "0 of 8 slices encoded" in detail
            assert "post slices to /v1/rooms/{room_id}/slices" in detail
            assert "fitted automatically at 8" in detail
            model = c.get("/v1/model").json()
            assert model["codebook_version"] is None
            assert model["encoder"] == {"checkpoint": None, "text": PACKAGED_TEXT, "vision": None}

            done = finished(c, post(c, "cooking-1", 0, 5))
            assert done["state"] == "SUCCESS", done
            result = done["result"]
            assert result["stored"] == 5 and result["codes_pending"]
            assert result["frames_ignored"] == 5  # a frame per slice; the encoder is text-only
            assert "5 of 8 slices encoded" in ready_detail(c)
            time.sleep(2.5 * MAINTENANCE_S)  # maintenance runs, but 5 slices are too few
            assert "5 of 8 slices encoded" in ready_detail(c)
            assert c.get("/v1/model").json()["codebook_version"] is None

            for room in ("chess-1", "music-1"):
                assert finished(c, post(c, room, 0, 3))["state"] == "SUCCESS"
            # maintenance fits the first codebook by itself; then nothing more is missing
            wait_until(lambda: ready_detail(c) == "", timeout=120, interval=0.2)
            version = c.get("/v1/model").json()["codebook_version"]
            assert version
            for room in ("cooking-1", "chess-1", "music-1"):
                shown = c.get(f"/v1/rooms/{room}").json()
                assert shown["lucid"] and not shown["codes_pending"], shown
                assert shown["codebook_version"] == version
            ranked = wait_until(
                lambda: c.post("/v1/rank", json={"user_id": "u1", "k": 3}).json()["items"],
                timeout=30,
                interval=0.2,
            )
            assert {i["room_id"] for i in ranked} == {"cooking-1", "chess-1", "music-1"}
            time.sleep(2.5 * MAINTENANCE_S)  # later rounds fit nothing more
            assert c.get("/v1/model").json()["codebook_version"] == version
    finally:
        stop(proc)
    text = log.read_text(errors="replace")
    assert "encoder towers: text model all-MiniLM-L6-v2" in text  # the API's start-up log
    assert "no vision tower: frames in slices are ignored" in text
