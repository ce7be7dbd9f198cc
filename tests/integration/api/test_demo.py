"""The newcomer path of ``make run``: ``lucidrec serve --demo`` on an empty data dir, on the
embedded default profile, then the curl command it prints; a restart, then ``--reset``."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from configs import load_settings
from tests.integration.api.conftest import api_env, start_server, stop, wait_until
from workers.catalog import Catalog

FIRST_ROOMS = 36  # DemoSchedule().live_rooms


def rooms(url: str) -> dict[str, bool]:
    """Every room in the catalog, and whether it is live with codes (a fresh connection each
    time: ``--reset`` replaces the database file)."""
    catalog = Catalog(url)
    try:
        return {r.room_id: r.status == "live" and r.room_lucid is not None for r in catalog.rooms()}
    finally:
        catalog.close()


def test_demo_ranks_rooms_within_minutes_and_lives_on_across_restarts(tmp_path: Path) -> None:
    env = api_env(tmp_path, LUCIDREC_CONFIG="default", LUCIDREC_API__API_KEYS="[]")
    env.pop("LUCIDREC_EXPERIMENTS_FILE")
    catalog = load_settings(env=env).catalog.url
    log = tmp_path / "serve.log"
    url, proc = start_server(env, log, "--demo", timeout=420)
    try:
        command = re.search(r"curl -s -X POST (\S+) .* -d '(\{.*\})'", log.read_text())
        assert command is not None, log.read_text()[-2000:]
        assert command.group(1) == f"{url}/v1/rank"

        def rank() -> dict:
            response = httpx.post(
                command.group(1),
                content=command.group(2),
                timeout=30,
                headers={"content-type": "application/json"},
            )
            assert response.status_code in (200, 503), response.text  # 503: no model yet
            return response.json() if response.status_code == 200 else {}

        out = wait_until(lambda: (r := rank()).get("items") and r, timeout=240, interval=1)
        assert len(out["items"]) == 5 and out["codebook_version"]
        assert all(re.fullmatch(r"\d+(-\d+){3}", i["lucid"]) for i in out["items"])
        # the viewers' events train the served model: not the untrained first snapshot
        out = wait_until(
            lambda: int((r := rank())["model_version"].split(":")[1]) > 0 and r, timeout=120
        )
        assert len({round(i["score"], 6) for i in out["items"]}) > 1
        first_codebook = out["codebook_version"]
    finally:
        stop(proc)
    first = rooms(catalog)
    assert len(first) >= FIRST_ROOMS

    url, proc = start_server(env, log, "--demo", timeout=240)  # a new run on the same data
    try:
        # fresh rooms stream beside the first run's, coded with the codebook it fitted

        def fresh() -> int:
            return sum(ok for room, ok in rooms(catalog).items() if room not in first)

        wait_until(lambda: fresh() >= FIRST_ROOMS, timeout=240, interval=1)
        assert httpx.get(f"{url}/v1/model").json()["codebook_version"] == first_codebook
    finally:
        stop(proc)

    url, proc = start_server(env, log, "--demo", "--reset", timeout=240)
    try:
        assert "demo reset:" in log.read_text()
        wait_until(lambda: sum(rooms(catalog).values()) >= FIRST_ROOMS, timeout=240, interval=1)
        assert not rooms(catalog).keys() & first.keys()
        model = wait_until(lambda: httpx.get(f"{url}/v1/model").json()["codebook_version"], 240)
        assert model != first_codebook
    finally:
        stop(proc)
