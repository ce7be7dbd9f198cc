"""The newcomer path of ``make run``: ``lucidrec serve --demo`` on an empty data dir, on the
embedded default profile, then the curl command it prints."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from tests.integration.api.conftest import api_env, start_server, stop

SEEDED = "demo catalog seeded"


def test_demo_seeds_once_and_its_printed_request_returns_trained_ranked_rooms(
    tmp_path: Path,
) -> None:
    env = api_env(tmp_path, LUCIDREC_CONFIG="default", LUCIDREC_API__API_KEYS="[]")
    env.pop("LUCIDREC_EXPERIMENTS_FILE")
    log = tmp_path / "serve.log"
    url, proc = start_server(env, log, "--demo", timeout=420)
    try:
        printed = log.read_text()
        assert printed.count(SEEDED) == 1
        command = re.search(r"curl -s -X POST (\S+) .* -d '(\{.*\})'", printed)
        assert command is not None, printed[-2000:]
        assert command.group(1) == f"{url}/v1/rank"
        response = httpx.post(
            command.group(1),
            content=command.group(2),
            timeout=30,
            headers={"content-type": "application/json"},
        )
        assert response.status_code == 200, response.text
        out = response.json()
        assert len(out["items"]) == 5 and out["codebook_version"]
        assert all(re.fullmatch(r"\d+(-\d+){3}", i["lucid"]) for i in out["items"])
        # the seed trained and published a model: not the untrained first snapshot
        assert int(out["model_version"].split(":")[1]) > 0
        assert len({round(i["score"], 6) for i in out["items"]}) > 1
    finally:
        stop(proc)
    url, proc = start_server(env, log, "--demo", timeout=240)  # same data dir: no second seed
    try:
        assert log.read_text().count(SEEDED) == 1
        assert httpx.get(f"{url}/v1/rooms/demo-cooking-0").json()["n_slices"] == 10
    finally:
        stop(proc)
