"""``run_demo`` on an accelerated schedule against a real ``lucidrec serve`` (with its
embedded worker): through the HTTP API alone (and the first codebook), rooms are
posted, encoded and coded, end and are replaced, a new topic appears, and the
viewers' rank requests return rooms and their events are accepted."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from api.demo import INITIAL_TOPICS, TOPICS, DemoSchedule, run_demo
from configs import load_settings
from tests.integration.api.conftest import API_KEY, api_env, start_server, stop, wait_until

FAST = DemoSchedule(
    tick_s=0.25,
    live_rooms=6,
    initial_slices=3,
    slice_interval_s=4.0,
    room_lifetime_s=(10.0, 20.0),
    topic_interval_s=12.0,
    new_topic_rooms=2,
    viewers=6,
    visit_interval_s=1.0,
    rank_k=5,
    taste_change_s=30.0,
    taste_settle_s=10.0,
    report_interval_s=10.0,
    encode_timeout_s=120.0,
)
RUN_S = 35.0


def test_the_demo_world_lives_through_the_api(tmp_path: Path) -> None:
    env = api_env(tmp_path)
    env.pop("LUCIDREC_EXPERIMENTS_FILE")
    url, proc = start_server(env, tmp_path / "serve.log")
    settings = load_settings(env=env)
    halt = threading.Event()
    try:
        with ThreadPoolExecutor(1) as pool:
            running = pool.submit(run_demo, url, API_KEY, settings, halt, FAST, seed=1)
            time.sleep(RUN_S)
            halt.set()
            world = running.result(timeout=60)
        with httpx.Client(base_url=url, timeout=30) as client:
            assert client.get("/v1/model").json()["codebook_version"]
            # the viewers were shown rooms, and the API took their events
            assert world.totals.visits > 20 and world.totals.impressions > 50
            assert world.totals.accepted == world.totals.impressions
            ranked = client.post("/v1/rank", json={"user_id": "demo-user-0", "k": 5}).json()
            assert ranked["items"] and all(i["room_id"] in world.rooms for i in ranked["items"])

            def room(room_id: str) -> dict:
                return client.get(f"/v1/rooms/{room_id}").json()

            ended = [r for r in world.rooms.values() if not r.live]
            assert len(ended) >= 2
            assert all(room(r.room_id)["status"] == "ended" for r in ended)
            later = [r for r in world.rooms.values() if r.number >= FAST.live_rooms]
            assert len(later) >= len(ended)  # each ended room was replaced
            newest = max(later, key=lambda r: r.number)
            coded = wait_until(lambda: room(newest.room_id)["lucid"], timeout=30)
            assert room(newest.room_id)["status"] == "live" and coded
            newcomer = next(r for r in later if r.topic == INITIAL_TOPICS)
            assert TOPICS[INITIAL_TOPICS].name in newcomer.room_id
            assert wait_until(lambda: room(newcomer.room_id)["lucid"], timeout=30)
    finally:
        halt.set()
        stop(proc)
