"""A real ``lucidrec serve`` (HTTP on a free port, with its embedded worker) for the API tests.

The module-wide server gets a catalog seeded through its own routes: 12 rooms
of two topics posted as slices, encoded by the worker, a codebook fitted from
the catalog, and a first batch of events so that both ranker variants of the
experiments file have a model.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from configs import Settings, load_settings
from tests.integration.services import free_port
from workers.codebooks import retrain_from_catalog

API_KEY = "test-key-1"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
EXPERIMENTS = """experiments:
  - name: retire_ids
    salt: api-tests
    variants:
      - {name: staged, weight: 60}
      - {name: lucid, weight: 40, overrides: {ranker: {variant: lucid_only}}}
"""
TOPICS = {"cook": "pasta sauce garlic oven recipe kitchen", "game": "boss level speedrun glitch"}


@dataclass
class Server:
    url: str
    env: dict[str, str]
    settings: Settings
    proc: subprocess.Popen
    log: Path

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30)


def api_env(data: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LUCIDREC_")}
    env.update(
        {
            "LUCIDREC_CONFIG": "test",
            "LUCIDREC_DATA_DIR": str(data),
            "LUCIDREC_EXPERIMENTS_FILE": str(data / "experiments.yaml"),
            "LUCIDREC_API__API_KEYS": f"[{API_KEY}]",
            "LUCIDREC_API__REFRESH_INTERVAL_S": "0.2",
            "LUCIDREC_API__MAX_BODY_BYTES": "1000000",
            "HF_HUB_OFFLINE": "1",
        }
        | extra
    )
    return env


def start_server(
    env: dict[str, str], log: Path, *flags: str, timeout: float = 120.0
) -> tuple[str, subprocess.Popen]:
    """``lucidrec serve`` with ``flags`` on a free port, once it answers ``/health``."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "serve", "--port", str(port), *flags],
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return url, proc
        except httpx.HTTPError:
            time.sleep(0.2)
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text()[-3000:]}")
    stop(proc)
    raise TimeoutError(f"the API did not answer /health within {timeout:.0f} s")


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM to the server's process group (the API and its embedded worker), then SIGKILL."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def slices(topic: str, room: int, count: int) -> list[dict]:
    words = TOPICS[topic]
    return [
        {
            "slice_id": f"{topic}{room}-{i}",
            "ts": 1_000.0 + i,
            "title": f"{topic} room {room}: {words}",
            "asr": f"{words} part {i}",
        }
        for i in range(count)
    ]


def wait_until(predicate, timeout: float, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError("condition not met in time")


def engagements(users: range, rooms: list[str], start: int) -> list[dict]:
    """Users click the 'cook' rooms and skip the 'game' ones, in the last minutes (the API
    refuses times outside api.event_ts_past_s / api.event_ts_future_s of its clock)."""
    now = time.time()
    events = []
    for u in users:
        for j, room in enumerate(rooms):
            click = room.startswith("cook")
            events.append(
                {
                    "event_id": f"ev{start}-{u}-{j}",
                    "ts": now - 600 + j,
                    "user_id": f"user{u}",
                    "room_id": room,
                    "context": {"hour": 20},
                    "labels": {"click": 1.0, "watch_s": 60.0} if click else {},
                }
            )
    return events


def seed(c: httpx.Client, settings: Settings) -> None:
    """Seed a running server through its routes: 12 rooms of two topics posted as slices and
    encoded, a codebook (unless maintenance fitted one already), a first batch of events;
    returns once it is ready and every ranker variant has a model."""
    tasks = [
        c.post(
            f"/v1/rooms/{topic}{r}/slices", headers=AUTH, json={"slices": slices(topic, r, 6)}
        ).json()["task_id"]
        for topic in TOPICS
        for r in range(6)
    ]
    for task in tasks:
        wait_until(
            lambda t=task: c.get(f"/v1/tasks/{t}").json()["state"] == "SUCCESS",
            timeout=180,
            interval=0.2,
        )
    if c.get("/v1/model").json()["codebook_version"] is None:
        retrain_from_catalog(settings, progress=False)
    rooms = [f"{t}{r}" for t in TOPICS for r in range(6)]
    c.post("/v1/events", headers=AUTH, json={"events": engagements(range(8), rooms, 0)})
    wait_until(lambda: c.get("/ready").status_code == 200, timeout=120, interval=0.2)
    wait_until(lambda: all(c.get("/v1/model").json()["variants"].values()), timeout=60)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("api")
    (data / "experiments.yaml").write_text(EXPERIMENTS)
    env = api_env(data)
    log = data / "serve.log"
    url, proc = start_server(env, log)
    settings = load_settings(env=env)
    try:
        with httpx.Client(base_url=url, timeout=30) as c:
            seed(c, settings)
        yield Server(url, env, settings, proc, log)
    finally:
        stop(proc)
