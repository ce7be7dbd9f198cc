"""The demo world on a fake clock against an in-memory fake of the API's routes: rooms
start, stream, end and are replaced; topics appear; viewers click what they like."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from api.demo import (
    FAVOURITE,
    INITIAL_TOPICS,
    SLICE_JITTER,
    TOPICS,
    DemoClient,
    DemoSchedule,
    DemoWorld,
    ResetRefusedError,
    check_schedule,
    client_url,
    reset_demo,
)
from configs import load_settings

T0 = 1_700_000_000.0
TICK_S = 5.0


class FakeService:
    """The routes the demo calls, in memory. ``/v1/rank`` shows live rooms in a random
    order, so what viewers click reflects their taste alone, not a ranker's."""

    def __init__(self) -> None:
        self.slices: dict[str, list[dict[str, Any]]] = {}
        self.ended: dict[str, int] = {}  # room -> how many slices it had when it ended
        self.events: list[dict[str, Any]] = []
        self.ranked: dict[str, list[str]] = {}  # request_id -> room ids shown
        self.log: list[tuple[str, str, Any]] = []  # (method, path, body) of every request
        self.auth: list[str | None] = []
        self.ready = True
        self.fail_path: str | None = None  # answer 500 on this path
        self.lost: set[str] = set()  # rooms whose slices all failed: unknown to the catalog
        self.rng = np.random.default_rng(99)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        body = json.loads(request.content) if request.content else None
        self.log.append((request.method, path, body))
        self.auth.append(request.headers.get("authorization"))
        if path == self.fail_path:
            return httpx.Response(500, json={"detail": "boom"})
        parts = path.strip("/").split("/")
        if parts[:2] == ["v1", "rooms"] and parts[3] == "slices":
            assert parts[2] not in self.ended, f"a slice posted to ended room {parts[2]}"
            self.slices.setdefault(parts[2], []).extend(body["slices"])
            return httpx.Response(202, json={"task_id": f"t{len(self.log)}", "status_url": ""})
        if parts[:2] == ["v1", "rooms"] and parts[3] == "end":
            if parts[2] in self.lost:
                return httpx.Response(404, json={"detail": "no room"})
            self.ended[parts[2]] = len(self.slices[parts[2]])
            return httpx.Response(200, json={"room_id": parts[2], "status": "ended"})
        if path == "/v1/rank":
            return self.rank(body)
        if path == "/v1/events":
            self.events += body["events"]
            return httpx.Response(202, json={"accepted": len(body["events"]), "duplicates": 0})
        raise AssertionError(f"unexpected request {request.method} {path}")

    def rank(self, body: dict[str, Any]) -> httpx.Response:
        if not self.ready:
            return httpx.Response(503, json={"detail": "no model yet"})
        live = [room for room in self.slices if room not in self.ended]
        shown = [str(r) for r in self.rng.permutation(live)[: body["k"]]]
        request_id = f"r{len(self.ranked)}"
        self.ranked[request_id] = shown
        items = [{"room_id": room, "score": 0.0} for room in shown]
        return httpx.Response(200, json={"request_id": request_id, "items": items})


def world_on(
    service: FakeService, schedule: DemoSchedule | None = None, *, seed: int = 0
) -> DemoWorld:
    client = DemoClient("http://demo.test", "key-1", transport=httpx.MockTransport(service))
    return DemoWorld(client, schedule, seed=seed, tag="t")


def run(world: DemoWorld, seconds: float) -> Iterator[float]:
    """Open the world at T0 and tick it every TICK_S for ``seconds``, yielding each time."""
    world.open(T0)
    for step in range(1, int(seconds / TICK_S) + 1):
        now = T0 + step * TICK_S
        world.tick(now)
        yield now


@pytest.fixture(scope="module")
def hour() -> tuple[FakeService, DemoWorld, list[int]]:
    """An hour of the default schedule; the live count after each tick."""
    service = FakeService()
    world = world_on(service)
    live = [world.live_count() for _ in run(world, 3600)]
    return service, world, live


def topic_of(room_id: str) -> str:
    return room_id.split("-")[2]


def test_the_first_rooms_are_live_now_with_recent_slices_of_their_topic() -> None:
    service = FakeService()
    world = world_on(service)
    tasks = world.open(T0)
    s = world.schedule
    assert len(tasks) == len(service.slices) == s.live_rooms
    topics = [topic_of(room) for room in service.slices]
    assert {t: topics.count(t) for t in topics} == {t.name: 6 for t in TOPICS[:INITIAL_TOPICS]}
    for room, slices in service.slices.items():
        times = [x["ts"] for x in slices]
        # the newest is now: maintenance (room_idle_s) judges a room by its last slice
        assert times == [T0 - (s.initial_slices - 1 - i) * s.slice_interval_s for i in range(5)]
        vocabulary = set(TOPICS[[t.name for t in TOPICS].index(topic_of(room))].words)
        assert set(slices[0]["asr"].split()) <= vocabulary
        frame = Image.open(io.BytesIO(base64.b64decode(slices[0]["frames"][0]["data"])))
        assert frame.format == "PNG" and frame.size == (96, 96)
    # only the write routes need the key, but every request carries it
    assert service.auth == ["Bearer key-1"] * len(service.log)


def test_over_an_hour_rooms_stream_end_and_are_replaced(
    hour: tuple[FakeService, DemoWorld, list[int]],
) -> None:
    service, world, live = hour
    s = world.schedule
    assert min(live) >= s.live_rooms  # an ended room is replaced in the same tick
    assert len(service.ended) >= 30 and len(service.slices) >= s.live_rooms + 30
    assert service.ended.keys() == {r.room_id for r in world.rooms.values() if not r.live}
    now = T0 + 3600
    for room_id, slices in service.slices.items():
        times = [x["ts"] for x in slices]
        gaps = np.diff(times)
        assert np.all(gaps >= s.slice_interval_s * (1 - SLICE_JITTER) - 1e-6)
        assert np.all(gaps <= s.slice_interval_s * (1 + SLICE_JITTER) + TICK_S)
        if room_id not in service.ended:  # never idle long enough for maintenance to end it
            assert now - times[-1] <= s.slice_interval_s * (1 + SLICE_JITTER) + TICK_S
        assert len({x["slice_id"] for x in slices}) == len(slices)
    lifetimes = [(r.ended_at - r.started_at) for r in world.rooms.values() if not r.live]
    assert max(lifetimes) <= s.room_lifetime_s[1] + TICK_S


def test_new_topics_appear_with_rooms_and_fans(
    hour: tuple[FakeService, DemoWorld, list[int]],
) -> None:
    service, world, _ = hour
    new = [t.name for t in TOPICS[INITIAL_TOPICS:]]
    appeared = {topic_of(room) for room in service.slices} & set(new)
    assert appeared == set(new[:4])  # one per 15 min: at 15, 30, 45 and 60 min
    fans = [v for v in world.viewers if set(v.favourites) & set(range(INITIAL_TOPICS, 10))]
    assert len(fans) >= 8
    clicked = {e["room_id"] for e in service.events if e["labels"]}
    assert {topic_of(room) for room in clicked} & set(new[:3])


def test_events_answer_what_each_viewer_was_shown(
    hour: tuple[FakeService, DemoWorld, list[int]],
) -> None:
    service, world, _ = hour
    assert world.totals.accepted == len(service.events) > 1000
    for event in service.events:
        shown = service.ranked[event["request_id"]]
        assert shown[event["position"]] == event["room_id"]
        assert event["user_id"].startswith("demo-user-")
        assert set(event["context"]) == {"hour", "weekday", "device"}
        labels = event["labels"]
        assert set(labels) <= {"click", "watch_s", "like", "follow"}
        assert bool(labels) == ("click" in labels) == ("watch_s" in labels)
    assert len({e["event_id"] for e in service.events}) == len(service.events)


def test_viewers_click_their_favourite_topics_and_good_rooms() -> None:
    """With tastes held still, clicks follow topic affinity and room quality."""
    still = DemoSchedule(taste_change_s=1e12, topic_interval_s=1e12, viewers=20)
    service = FakeService()
    world = world_on(service, still)
    for _ in run(world, 900):
        pass
    favourites = {v.user_id: set(v.favourites) for v in world.viewers}

    def click_rate(events: list[dict[str, Any]]) -> float:
        assert len(events) >= 200
        return sum(bool(e["labels"]) for e in events) / len(events)

    rooms = world.rooms
    liked, other = [], []
    for e in service.events:
        topic = rooms[e["room_id"]].topic
        (liked if topic in favourites[e["user_id"]] else other).append(e)
    assert click_rate(liked) > 4 * click_rate(other)
    good = [e for e in liked if rooms[e["room_id"]].quality > 0.6]
    poor = [e for e in liked if rooms[e["room_id"]].quality < 0.4]
    assert click_rate(good) > 1.5 * click_rate(poor)
    watched = [e["labels"]["watch_s"] for e in liked if e["labels"]]
    assert np.mean(watched) > 2 * np.mean([e["labels"]["watch_s"] for e in other if e["labels"]])


def test_a_taste_settles_on_a_new_favourite_over_taste_settle_s() -> None:
    service = FakeService()
    schedule = DemoSchedule(
        topic_interval_s=600.0, new_topic_fans=1.0, taste_change_s=1e12, taste_settle_s=100.0
    )
    world = world_on(service, schedule)
    ticks = run(world, 600 + schedule.taste_settle_s * 4)  # before the second new topic
    next(t for t in ticks if t >= T0 + 600)  # the first new topic appears
    new = INITIAL_TOPICS
    assert all(new in v.favourites for v in world.viewers)
    before = np.mean([v.affinity[new] for v in world.viewers])
    for _ in ticks:
        pass
    after = np.mean([v.affinity[new] for v in world.viewers])
    assert before < 0.2 and after > 0.95 * FAVOURITE


def test_the_same_seed_makes_the_same_world() -> None:
    logs = []
    for seed in (3, 3, 4):
        service = FakeService()
        for _ in run(world_on(service, seed=seed), 600):
            pass
        logs.append(service.log)
    assert logs[0] == logs[1]
    assert logs[0] != logs[2]


def test_viewers_wait_while_the_service_has_no_model() -> None:
    service = FakeService()
    service.ready = False
    world = world_on(service)
    ticks = run(world, 600)
    for _ in range(60):
        next(ticks)
    assert not service.events and world.totals.visits == 0
    service.ready = True
    for _ in ticks:
        pass
    assert service.events and world.totals.visits > 0


def test_a_failed_request_leaves_its_step_for_the_next_tick() -> None:
    service = FakeService()
    world = world_on(service, DemoSchedule(room_lifetime_s=(60.0, 60.0)))
    world.open(T0)
    doomed = next(room for room in world.rooms.values())
    service.fail_path = f"/v1/rooms/{doomed.room_id}/end"
    with pytest.raises(httpx.HTTPStatusError):
        world.tick(doomed.ends_at)
    assert doomed.live
    service.fail_path = None
    world.tick(doomed.ends_at + TICK_S)
    assert not doomed.live and doomed.room_id in service.ended


def test_a_room_the_catalog_never_stored_ends_without_stalling_the_world() -> None:
    service = FakeService()
    world = world_on(service, DemoSchedule(room_lifetime_s=(60.0, 60.0)))
    world.open(T0)
    lost = next(room for room in world.rooms.values())
    service.lost.add(lost.room_id)
    world.tick(lost.ends_at)
    assert not lost.live and world.live_count() == world.schedule.live_rooms


def test_a_slice_interval_that_maintenance_would_end_rooms_at_is_refused(tmp_path: Path) -> None:
    settings = load_settings("test", env={"LUCIDREC_DATA_DIR": str(tmp_path)})
    check_schedule(DemoSchedule(slice_interval_s=400.0), settings)
    with pytest.raises(ValueError, match="room_idle_s"):
        check_schedule(DemoSchedule(slice_interval_s=500.0), settings)


def test_a_wildcard_bind_address_is_reached_on_loopback() -> None:
    assert client_url("0.0.0.0", 8000) == "http://127.0.0.1:8000"
    assert client_url("::", 8000) == "http://[::1]:8000"
    assert client_url("10.0.0.2", 9) == "http://10.0.0.2:9"


# --- reset ----------------------------------------------------------------------------


def lucidrec_data_dir(data: Path) -> None:
    """The files a served embedded default leaves, plus a user's own."""
    for name in ("catalog.db", "catalog.db-wal", "broker.db", "results.db", "celerybeat-schedule"):
        (data / name).write_bytes(b"x")
    (data / "models" / "codebooks" / "v1").mkdir(parents=True)
    (data / "models" / "ranker" / "staged").mkdir(parents=True)
    (data / "experiments.yaml").write_text("experiments: []\n")
    (data / "catalog.db.backup").write_bytes(b"mine")


def test_reset_deletes_the_embedded_state_and_nothing_else(tmp_path: Path) -> None:
    lucidrec_data_dir(tmp_path)
    deleted = reset_demo(load_settings("default", env={"LUCIDREC_DATA_DIR": str(tmp_path)}))
    assert {p.name for p in deleted} == {
        "catalog.db",
        "catalog.db-wal",
        "broker.db",
        "results.db",
        "celerybeat-schedule",
        "models",
    }
    assert sorted(p.name for p in tmp_path.iterdir()) == ["catalog.db.backup", "experiments.yaml"]
    assert reset_demo(load_settings("default", env={"LUCIDREC_DATA_DIR": str(tmp_path)})) == []


def test_reset_refuses_a_folder_that_is_not_a_lucidrec_data_dir(tmp_path: Path) -> None:
    (tmp_path / "models" / "weights").mkdir(parents=True)  # someone's own models folder
    settings = load_settings("default", env={"LUCIDREC_DATA_DIR": str(tmp_path)})
    with pytest.raises(ResetRefusedError, match="does not look like a lucidrec data dir"):
        reset_demo(settings)
    (tmp_path / "catalog.db").write_bytes(b"x")
    with pytest.raises(ResetRefusedError, match="weights"):
        reset_demo(settings)
    assert (tmp_path / "models" / "weights").is_dir() and (tmp_path / "catalog.db").is_file()


def test_reset_refuses_when_a_store_lives_outside_the_data_dir(tmp_path: Path) -> None:
    lucidrec_data_dir(tmp_path)
    env = {
        "LUCIDREC_DATA_DIR": str(tmp_path),
        "LUCIDREC_CATALOG__URL": "postgresql+psycopg://u:secret@db/lucidrec",
    }
    with pytest.raises(ResetRefusedError, match=r"catalog\.url") as refused:
        reset_demo(load_settings("default", env=env))
    assert "secret" not in str(refused.value)
    assert (tmp_path / "broker.db").is_file()
