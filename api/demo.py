"""The live demo world behind ``lucidrec serve --demo``, driven through the public HTTP API.

A catalog seeded once goes stale: maintenance ends every room whose last slice is
older than ``workers.room_idle_s``, and ``/v1/rank`` then ranks nothing. So the
demo is a small world that keeps going instead. Live rooms post a slice (text from
their topic's vocabulary, a frame drawn with PIL) every ``slice_interval_s``, end
after a lifetime of tens of minutes, and are replaced; now and then a topic from
the reserve appears. A few dozen viewers with favourite topics (which drift) ask
``/v1/rank`` for rooms and post an impression per room shown, with a click, a
watch time, a like or a follow drawn from their affinity for the room's topic and
the room's latent quality, so the ranker has a signal to learn and rooms rise and
fall in the lists.

Everything goes through HTTP as a client's would (:class:`DemoClient`), so the
demo exercises the real write and serve paths whatever sits behind them. The one
exception is the first codebook: the service's maintenance fits it by itself once
enough slices are encoded (``workers.bootstrap_min_slices``), at its next round; the
demo fits it from the catalog as soon as the first rooms are encoded, so the first
ranking need not wait for that round, unless the service already has one
(``GET /v1/model``). Both take the catalog's codebook lease and fit only while no
codebook is active, so there is one first codebook either way.

:class:`DemoWorld` is the state and one :meth:`DemoWorld.tick`, deterministic for
a seed and a sequence of clock readings; :func:`run_demo` ticks it on wall time in
a thread; :func:`reset_demo` clears an embedded data dir for ``serve --demo --reset``.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import logging
import shutil
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image, ImageDraw
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from tqdm.auto import tqdm

from configs import RankerSettings, Settings
from configs.ranker import ContextFeature
from quantizer import QuantizerError
from workers.catalog import Catalog
from workers.codebooks import first_codebook_slices, fit_first_codebook

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Topic:
    name: str
    colour: tuple[int, int, int]
    words: tuple[str, ...]


def topic(name: str, colour: tuple[int, int, int], words: str) -> Topic:
    return Topic(name, colour, tuple(words.split()))


# The first INITIAL_TOPICS are live from the start; the rest is the reserve that
# appears one topic per ``topic_interval_s``.
TOPICS = (
    topic("cooking", (220, 120, 40), "pasta sauce garlic oven recipe kitchen chef tomato basil"),
    topic("gaming", (60, 60, 200), "speedrun boss level controller platformer glitch arcade"),
    topic("music", (150, 40, 160), "guitar chords piano song melody singer acoustic band rhythm"),
    topic("sports", (30, 150, 60), "football goal match team league training coach stadium"),
    topic("travel", (40, 160, 200), "city walk street market beach mountain train hostel sunset"),
    topic("chess", (90, 90, 90), "opening gambit endgame blitz knight bishop checkmate rook"),
    topic("painting", (200, 60, 80), "canvas brush acrylic sketch portrait palette easel"),
    topic("science", (240, 200, 40), "experiment chemistry physics telescope lab molecule rocket"),
    topic("fitness", (200, 40, 40), "workout squat cardio stretch yoga plank dumbbell reps"),
    topic("comedy", (250, 140, 180), "joke standup laugh punchline crowd improv roast prank"),
    topic("gardening", (100, 180, 60), "seeds soil plants compost flowers pruning harvest"),
    topic("coding", (30, 200, 160), "python bug compiler keyboard refactor terminal debug"),
)
INITIAL_TOPICS = 6

# The viewers' behaviour. Affinity is in [0, 1] per topic: FAVOURITE for a
# favourite topic once settled, BACKGROUND otherwise; a room's appeal to a viewer
# is affinity x quality, and every engagement probability grows with it.
FAVOURITE, BACKGROUND = 0.9, 0.05
CLICK_FLOOR, CLICK_CEILING = 0.02, 0.6  # click probability at appeal 0 and 1, at the top
POSITION_DECAY = 0.92  # each position further down multiplies the click probability
WATCH_FLOOR_S, WATCH_SPAN_S = 10.0, 170.0  # mean watch time after a click: floor + span x appeal
LIKE_RATE, FOLLOW_RATE = 0.4, 0.15  # after a click, x appeal
SLICE_JITTER = 0.2  # a room's next slice comes after slice_interval_s x (1 +- this)
EVENTS_PER_POST = 1000  # the API's cap on one POST /v1/events


@dataclass(frozen=True)
class DemoSchedule:
    """The world's pace, in seconds of the clock :meth:`DemoWorld.tick` is given (wall time
    under :func:`run_demo`). The defaults make an hour worth watching: 36 live rooms, a
    slice per room every 1.5 min, rooms living 20-50 min (the first ones are caught
    part-way, so some end within minutes), a new topic every 15 min, and 40 viewers
    ranking about once every 30 s each (~1.3 rank requests a second)."""

    tick_s: float = 2.0  # run_demo: wall time between ticks
    live_rooms: int = 36  # rooms kept live: a room that ends is replaced at once
    initial_slices: int = 5  # slices per first room, slice_interval_s apart, the last now
    slice_interval_s: float = 90.0  # each live room posts a slice this often
    room_lifetime_s: tuple[float, float] = (1200.0, 3000.0)  # uniform between these
    topic_interval_s: float = 900.0  # a reserve topic appears this often, while any is left
    new_topic_rooms: int = 3  # rooms a new topic starts with
    new_topic_fans: float = 0.3  # the share of viewers who take to a new topic
    viewers: int = 40
    visit_interval_s: float = 30.0  # mean time between a viewer's visits (exponential)
    rank_k: int = 10  # rooms shown per visit
    taste_change_s: float = 1800.0  # a viewer changes a favourite this often (+-50 %)
    taste_settle_s: float = 300.0  # time constant of affinity following a changed taste
    report_interval_s: float = 300.0  # a summary in the log this often
    encode_timeout_s: float = 600.0  # run_demo: the first rooms' encoding may take this long


class DemoClient:
    """The routes the demo uses, as any client would call them (the bearer key on every
    request when the service has keys; only the write routes need it)."""

    def __init__(
        self, base_url: str, api_key: str | None, transport: httpx.BaseTransport | None = None
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.Client(
            base_url=base_url, headers=headers, timeout=30.0, transport=transport
        )

    def close(self) -> None:
        self.http.close()

    def _json(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        response = self.http.request(method, path, json=body)
        response.raise_for_status()
        return response.json()

    def healthy(self) -> bool:
        try:
            return self.http.get("/health").status_code == 200
        except httpx.TransportError:
            return False

    def post_slices(self, room_id: str, slices: list[dict[str, Any]]) -> str:
        """Queue the slices for encoding; returns the task id."""
        return self._json("POST", f"/v1/rooms/{room_id}/slices", {"slices": slices})["task_id"]

    def end_room(self, room_id: str) -> None:
        """End the room; one the catalog never stored (every slice of it failed to encode)
        is as good as ended, and must not fail every later tick."""
        response = self.http.post(f"/v1/rooms/{room_id}/end")
        if response.status_code != 404:
            response.raise_for_status()

    def task_state(self, task_id: str) -> str:
        return self._json("GET", f"/v1/tasks/{task_id}")["state"]

    def codebook_version(self) -> str | None:
        return self._json("GET", "/v1/model")["codebook_version"]

    def rank(self, user_id: str, k: int, context: dict[str, int]) -> dict[str, Any] | None:
        """The ranked response, or None while the service has no model yet (503)."""
        response = self.http.post("/v1/rank", json={"user_id": user_id, "k": k, "context": context})
        if response.status_code == 503:
            return None
        response.raise_for_status()
        return response.json()

    def post_events(self, events: list[dict[str, Any]]) -> int:
        """Post the events (in bodies the API accepts); returns how many it accepted."""
        accepted = 0
        for start in range(0, len(events), EVENTS_PER_POST):
            body = {"events": events[start : start + EVENTS_PER_POST]}
            accepted += self._json("POST", "/v1/events", body)["accepted"]
        return accepted


@dataclass
class Room:
    room_id: str
    topic: int  # index in TOPICS
    number: int  # the n-th room of this world: seeds its slices' content
    quality: float  # latent, in (0, 1): how much viewers like it, whatever their taste
    started_at: float
    ends_at: float
    next_slice_at: float
    n_slices: int = 0
    ended_at: float | None = None
    impressions: int = 0
    clicks: int = 0

    @property
    def live(self) -> bool:
        return self.ended_at is None


@dataclass
class Viewer:
    user_id: str
    device: int
    favourites: list[int]  # topic indices
    affinity: np.ndarray  # per topic of TOPICS; follows the favourites over taste_settle_s
    next_visit_at: float
    next_change_at: float
    shown: list[str] = field(default_factory=list)  # the rooms of the last visit

    def target(self) -> np.ndarray:
        """The affinity the favourites pull towards."""
        target = np.full(len(TOPICS), BACKGROUND)
        target[self.favourites] = FAVOURITE
        return target


@dataclass
class Totals:
    """Counts since the world opened; the report logs their change over each interval."""

    started: int = 0
    ended: int = 0
    slices: int = 0
    visits: int = 0
    impressions: int = 0
    clicks: int = 0
    favourite_impressions: int = 0  # of rooms in one of the viewer's favourite topics
    accepted: int = 0  # events the API accepted

    def minus(self, other: Totals) -> Totals:
        return Totals(
            *(getattr(self, f.name) - getattr(other, f.name) for f in dataclasses.fields(self))
        )


def draw_frame(colour: tuple[int, int, int], seed: int) -> str:
    """A 96x96 PNG with a few discs in ``colour`` on a dark ground, base64-encoded: frames of
    one topic look alike, so the vision tower (when configured) has something to see."""
    rng = np.random.default_rng(seed)
    image = Image.new("RGB", (96, 96), tuple(int(c * 0.3) for c in colour))
    draw = ImageDraw.Draw(image)
    for _ in range(4):
        x, y = (int(v) for v in rng.integers(0, 80, 2))
        size = int(rng.integers(10, 40))
        draw.ellipse((x, y, x + size, y + size), fill=colour)
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def slice_body(room: Room, index: int, ts: float, seed: int) -> dict[str, Any]:
    """The ``index``-th slice of ``room``. Its content is seeded by the room and the index
    alone (not the world's draw order), and each room leans on a few words of its topic,
    so rooms of one topic are alike without being identical."""
    subject = TOPICS[room.topic]
    words = np.array(subject.words)
    lean = np.random.default_rng((seed, room.number)).dirichlet(np.ones(len(words)))
    rng = np.random.default_rng((seed, room.number, index))
    return {
        "slice_id": f"{room.room_id}-{index:03d}",
        "ts": ts,
        "title": f"{subject.name} live: {' '.join(rng.choice(words, 3, p=lean))}",
        "asr": " ".join(rng.choice(words, 40, p=lean)),
        "author": f"{subject.name}_streamer_{room.number}",
        "tags": [subject.name, *rng.choice(words, 2, p=lean)],
        "frames": [{"data": draw_frame(subject.colour, room.number * 1000 + index)}],
    }


def context_of(now: float, device: int, features: Sequence[ContextFeature]) -> dict[str, int]:
    """The request context the deployment's ranker reads (``ranker.context``), of those the
    demo knows: the hour and weekday of ``now`` (UTC) and the viewer's device."""
    moment = time.gmtime(now)
    known = {"hour": moment.tm_hour, "weekday": moment.tm_wday, "device": device}
    return {f.name: known[f.name] % f.size for f in features if f.name in known}


class DemoWorld:
    """Rooms, topics and viewers, moved one step at a time by :meth:`tick`.

    ``tag`` goes into every room and event id, so the ids of a restarted demo never
    collide with an earlier run's on the same data dir (a known event or slice id is
    skipped as a duplicate, and slices posted to an ended room leave it ended).
    Viewers keep their ids (``demo-user-0``...) across runs.
    """

    def __init__(
        self,
        client: DemoClient,
        schedule: DemoSchedule | None = None,
        *,
        seed: int = 0,
        tag: str = "demo",
        context: Sequence[ContextFeature] | None = None,
    ) -> None:
        self.client = client
        self.schedule = schedule or DemoSchedule()
        self.seed = seed
        self.tag = tag
        self.context = RankerSettings().context if context is None else context
        self.rng = np.random.default_rng(seed)
        self.topics = list(range(INITIAL_TOPICS))  # the active ones, indices in TOPICS
        self.rooms: dict[str, Room] = {}
        self.viewers: list[Viewer] = []
        self.totals = Totals()
        self.reported = Totals()
        self.now = 0.0
        self.next_topic_at = 0.0
        self.next_report_at = 0.0
        self.event_count = 0

    # --- start ------------------------------------------------------------------------

    def open(self, now: float) -> list[str]:
        """Post the first rooms (``initial_slices`` each, the last one now) and place the
        viewers; returns the encode task ids, so the caller can wait for the first codes."""
        s = self.schedule
        self.now = now
        self.next_topic_at = now + s.topic_interval_s
        self.next_report_at = now + s.report_interval_s
        self.viewers = [self._new_viewer(u, now) for u in range(s.viewers)]
        logger.info(
            "demo: %d rooms in %d topics, %d slices each; %d viewers",
            s.live_rooms,
            len(self.topics),
            s.initial_slices,
            s.viewers,
        )
        return [
            self._start_room(self.topics[i % len(self.topics)], now, first=True)
            for i in range(s.live_rooms)
        ]

    def _new_viewer(self, number: int, now: float) -> Viewer:
        """A viewer who likes two of the initial topics; viewer u likes topic u mod 6 first,
        so ``demo-user-0`` (the printed curl command's) likes cooking."""
        first = number % INITIAL_TOPICS
        second = int(self.rng.choice([t for t in range(INITIAL_TOPICS) if t != first]))
        viewer = Viewer(
            user_id=f"demo-user-{number}",
            device=int(self.rng.integers(0, 3)),
            favourites=[first, second],
            affinity=np.zeros(len(TOPICS)),
            next_visit_at=now + self.rng.exponential(self.schedule.visit_interval_s),
            next_change_at=now + self._change_gap(),
        )
        viewer.affinity = viewer.target()
        return viewer

    def _start_room(self, topic: int, now: float, *, first: bool = False) -> str:
        """Start a room of ``topic`` with its first slice (``initial_slices`` of them for a
        first room, which is also caught part-way through its lifetime); returns the task id."""
        s = self.schedule
        lifetime = self.rng.uniform(*s.room_lifetime_s)
        if first:
            lifetime *= self.rng.uniform(0.1, 1.0)
        number = len(self.rooms)
        room = Room(
            room_id=f"demo-{self.tag}-{TOPICS[topic].name}-{number}",
            topic=topic,
            number=number,
            quality=float(self.rng.beta(2.0, 2.0)),
            started_at=now,
            ends_at=now + lifetime,
            next_slice_at=now + self._slice_gap(),
        )
        count = s.initial_slices if first else 1
        times = [now - (count - 1 - i) * s.slice_interval_s for i in range(count)]
        task = self.client.post_slices(
            room.room_id, [slice_body(room, i, ts, self.seed) for i, ts in enumerate(times)]
        )
        room.n_slices = count
        self.rooms[room.room_id] = room
        self.totals.started += 1
        self.totals.slices += count
        if not first:
            logger.info(
                "demo: room %s started (quality %.2f, ends in %.0f min)",
                room.room_id,
                room.quality,
                lifetime / 60,
            )
        return task

    def _slice_gap(self) -> float:
        return self.schedule.slice_interval_s * self.rng.uniform(1 - SLICE_JITTER, 1 + SLICE_JITTER)

    # --- one step ---------------------------------------------------------------------

    def tick(self, now: float) -> None:
        """One step to ``now``: a new topic if one is due, rooms past their lifetime ended
        and replaced, a slice from each room that is due one, tastes drifted, the viewers
        due a visit served and their events posted, and the summary if one is due.

        A failed request raises (``httpx.HTTPError``) before the state it would change
        is changed, so the next tick does that step again."""
        elapsed, self.now = now - self.now, now
        self._new_topic(now)
        self._end_rooms(now)
        while self.live_count() < self.schedule.live_rooms:
            self._start_room(int(self.rng.choice(self.topics)), now)
        self._stream(now)
        self._drift(now, elapsed)
        self._visit_due(now)
        self._report(now)

    def live_count(self) -> int:
        return sum(room.live for room in self.rooms.values())

    def _new_topic(self, now: float) -> None:
        if now < self.next_topic_at or len(self.topics) == len(TOPICS):
            return
        self.next_topic_at += self.schedule.topic_interval_s
        new = len(self.topics)
        self.topics.append(new)
        fans = [v for v in self.viewers if self.rng.random() < self.schedule.new_topic_fans]
        for viewer in fans:
            self._take_to(viewer, new)
        logger.info("demo: a new topic, %s; %d viewers take to it", TOPICS[new].name, len(fans))
        for _ in range(self.schedule.new_topic_rooms):
            self._start_room(new, now)

    def _end_rooms(self, now: float) -> None:
        for room in self.rooms.values():
            if room.live and room.ends_at <= now:
                self.client.end_room(room.room_id)
                room.ended_at = now
                self.totals.ended += 1
                logger.info(
                    "demo: room %s ended after %.0f min (%d impressions, %d clicks)",
                    room.room_id,
                    (now - room.started_at) / 60,
                    room.impressions,
                    room.clicks,
                )

    def _stream(self, now: float) -> None:
        for room in self.rooms.values():
            if room.live and room.next_slice_at <= now:
                self.client.post_slices(
                    room.room_id, [slice_body(room, room.n_slices, now, self.seed)]
                )
                room.n_slices += 1
                room.next_slice_at = now + self._slice_gap()
                self.totals.slices += 1

    def _take_to(self, viewer: Viewer, topic: int) -> None:
        """``topic`` replaces one of the viewer's favourites; affinity follows over time."""
        viewer.favourites[int(self.rng.integers(len(viewer.favourites)))] = topic

    def _change_gap(self) -> float:
        """Not exponential: no viewer turns from its favourites in its first minutes."""
        return self.schedule.taste_change_s * self.rng.uniform(0.5, 1.5)

    def _drift(self, now: float, elapsed: float) -> None:
        """Tastes change now and then (to a topic active now), and settle slowly."""
        pull = 1.0 - np.exp(-max(elapsed, 0.0) / self.schedule.taste_settle_s)
        for viewer in self.viewers:
            if viewer.next_change_at <= now:
                viewer.next_change_at = now + self._change_gap()
                others = [t for t in self.topics if t not in viewer.favourites]
                if others:
                    self._take_to(viewer, int(self.rng.choice(others)))
            viewer.affinity += pull * (viewer.target() - viewer.affinity)

    # --- viewers ----------------------------------------------------------------------

    def _visit_due(self, now: float) -> None:
        events: list[dict[str, Any]] = []
        for viewer in self.viewers:
            if viewer.next_visit_at <= now:
                events += self._visit(viewer, now)
                viewer.next_visit_at = now + self.rng.exponential(self.schedule.visit_interval_s)
        if events:
            self.totals.accepted += self.client.post_events(events)

    def _visit(self, viewer: Viewer, now: float) -> list[dict[str, Any]]:
        """Rank for the viewer and react to what is shown: one event per room of this
        world (rooms of an earlier run are not the demo's to judge)."""
        context = context_of(now, viewer.device, self.context)
        response = self.client.rank(viewer.user_id, self.schedule.rank_k, context)
        if response is None:
            return []
        self.totals.visits += 1
        viewer.shown = [item["room_id"] for item in response["items"]]
        events = []
        for position, room_id in enumerate(viewer.shown):
            room = self.rooms.get(room_id)
            if room is None:
                continue
            labels = self._engage(viewer, room, position)
            self._count(viewer, room, clicked=bool(labels))
            self.event_count += 1
            events.append(
                {
                    "event_id": f"demo-{self.tag}-e{self.event_count}",
                    "ts": now,
                    "user_id": viewer.user_id,
                    "room_id": room_id,
                    "request_id": response["request_id"],
                    "position": position,
                    "context": context,
                    "labels": labels,
                }
            )
        return events

    def _engage(self, viewer: Viewer, room: Room, position: int) -> dict[str, float]:
        """The viewer's labels for ``room`` shown at ``position``: none (an impression), or a
        click with a watch time and maybe a like or a follow, likelier the more appealing."""
        appeal = float(viewer.affinity[room.topic]) * room.quality
        click = (CLICK_FLOOR + (CLICK_CEILING - CLICK_FLOOR) * appeal) * POSITION_DECAY**position
        if self.rng.random() >= click:
            return {}
        watch_s = self.rng.exponential(WATCH_FLOOR_S + WATCH_SPAN_S * appeal)
        labels = {"click": 1.0, "watch_s": round(float(watch_s), 1)}
        if self.rng.random() < LIKE_RATE * appeal:
            labels["like"] = 1.0
        if self.rng.random() < FOLLOW_RATE * appeal:
            labels["follow"] = 1.0
        return labels

    def _count(self, viewer: Viewer, room: Room, *, clicked: bool) -> None:
        room.impressions += 1
        room.clicks += clicked
        self.totals.impressions += 1
        self.totals.clicks += clicked
        self.totals.favourite_impressions += room.topic in viewer.favourites

    # --- the log ----------------------------------------------------------------------

    def _report(self, now: float) -> None:
        """Log what changed since the last summary. The share of impressions on the viewers'
        favourite topics is the one to watch: it rises as the ranker learns their tastes."""
        if now < self.next_report_at:
            return
        self.next_report_at += self.schedule.report_interval_s
        window, self.reported = self.totals.minus(self.reported), dataclasses.replace(self.totals)
        shown = max(window.impressions, 1)
        logger.info(
            "demo: %d live rooms in %d topics; in %.0f min: %d rooms started, %d ended, %d slices, "
            "%d visits, %d impressions (%.0f%% on favourite topics), %d clicks (CTR %.1f%%), "
            "%d events accepted",
            self.live_count(),
            len(self.topics),
            self.schedule.report_interval_s / 60,
            window.started,
            window.ended,
            window.slices,
            window.visits,
            window.impressions,
            100 * window.favourite_impressions / shown,
            window.clicks,
            100 * window.clicks / shown,
            window.accepted,
        )
        live = [room for room in self.rooms.values() if room.live]
        top = sorted(live, key=lambda room: room.clicks, reverse=True)[:3]
        logger.info(
            "demo: most clicked live rooms: %s",
            ", ".join(f"{r.room_id} ({r.clicks} clicks, quality {r.quality:.2f})" for r in top),
        )
        if self.viewers:
            first = self.viewers[0]
            logger.info(
                "demo: %s likes %s and was last shown %s",
                first.user_id,
                " and ".join(TOPICS[t].name for t in first.favourites),
                ", ".join(first.shown[:5]) or "nothing",
            )


# --- running it against a service -----------------------------------------------------


def client_url(host: str, port: int) -> str:
    """The URL a client on this machine reaches ``serve --host host --port port`` at (a
    wildcard bind address is reached on loopback)."""
    host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def run_tag(now: float) -> str:
    """A tag unique to a start: the start's seconds in base 36 (6 characters until 2038)."""
    return np.base_repr(int(now), 36).lower()


def check_schedule(schedule: DemoSchedule, settings: Settings) -> None:
    """Refuse a pace at which maintenance would end live rooms between their slices."""
    longest_gap = schedule.slice_interval_s * (1 + SLICE_JITTER)
    if longest_gap >= settings.workers.room_idle_s:
        raise ValueError(
            f"slice_interval_s {schedule.slice_interval_s} s leaves up to {longest_gap:.0f} s "
            f"between a room's slices: workers.room_idle_s ({settings.workers.room_idle_s} s) "
            "would end live rooms; post slices more often"
        )


def wait_for_tasks(
    client: DemoClient, task_ids: Sequence[str], timeout_s: float, stop: threading.Event
) -> bool:
    """Wait until every task has finished (or failed: the rest still make codes); False if
    ``stop`` is set or ``timeout_s`` passes first."""
    deadline = time.monotonic() + timeout_s
    failed = 0
    for task_id in tqdm(task_ids, desc="demo: encoding the first rooms", unit="room"):
        while (state := client.task_state(task_id)) not in ("SUCCESS", "FAILURE"):
            if stop.wait(0.2) or time.monotonic() > deadline:
                logger.warning("demo: the first rooms were not encoded within %.0f s", timeout_s)
                return False
        failed += state == "FAILURE"
    if failed:
        logger.warning("demo: %d of the first %d encode tasks failed", failed, len(task_ids))
    return True


def ensure_codebook(client: DemoClient, settings: Settings) -> None:
    """Fit the first codebook from the catalog unless the service already has one: without
    one no room has codes, and ``/v1/rank`` ranks nothing. The service's maintenance would
    fit it too, at its next round; this one is at once (one fit either way: the catalog's
    codebook lease, and only while none is active)."""
    version = client.codebook_version()
    if version is not None:
        logger.info("demo: the service has codebook %s", version)
        return
    logger.info("demo: fitting the first codebook on the encoded slices")
    catalog = Catalog(settings.catalog.url)
    try:
        book = fit_first_codebook(settings, catalog, wait=True)
        active = catalog.active_codebook()
    except QuantizerError as exc:
        logger.error("demo: no first codebook (%s); rooms stay without codes", exc)
        return
    finally:
        catalog.close()
    if active is None:
        logger.error(
            "demo: no first codebook: fewer than %d slices are encoded "
            "(workers.bootstrap_min_slices); rooms stay without codes until maintenance fits it",
            first_codebook_slices(settings),
        )
    elif book is None:
        logger.info("demo: the service fitted codebook %s meanwhile", active.version)
    else:
        logger.info("demo: codebook %s is active; the rooms have codes", book.version)


def run_demo(
    base_url: str,
    api_key: str | None,
    settings: Settings,
    stop: threading.Event,
    schedule: DemoSchedule | None = None,
    *,
    seed: int = 0,
) -> DemoWorld:
    """Run a demo world against the service at ``base_url`` until ``stop`` is set (``serve
    --demo`` runs it in a daemon thread); returns the world, for a look at what it did.

    Waits for ``/health``, posts the first rooms, waits for their encoding, makes sure a
    codebook is active, then ticks every ``schedule.tick_s``. A tick that fails (the service
    restarting, a refused request) is logged and the next tick goes on.
    """
    schedule = schedule or DemoSchedule()
    check_schedule(schedule, settings)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per demo request
    client = DemoClient(base_url, api_key)
    world = DemoWorld(
        client, schedule, seed=seed, tag=run_tag(time.time()), context=settings.ranker.context
    )
    try:
        while not client.healthy():
            if stop.wait(0.2):
                return world
        tasks = world.open(time.time())
        if wait_for_tasks(client, tasks, schedule.encode_timeout_s, stop):
            ensure_codebook(client, settings)
        while not stop.wait(schedule.tick_s):
            try:
                world.tick(time.time())
            except httpx.HTTPError as exc:
                logger.warning("demo: a step failed, the next one goes on: %s", exc)
    finally:
        client.close()
    return world


# --- reset ----------------------------------------------------------------------------

SQLITE_SIDECARS = ("", "-wal", "-shm", "-journal")
SHELVE_SUFFIXES = ("", ".db", ".dat", ".dir", ".bak")  # the beat schedule's dbm files
MODEL_STORE_ENTRIES = {"codebooks", "ranker"}


class ResetRefusedError(RuntimeError):
    """``reset_demo`` found state it will not delete; the message says what and why."""


def sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite URL (catalog, ``sqla+`` broker, ``db+`` result backend);
    None for any other store."""
    bare = url.removeprefix("sqla+").removeprefix("db+")
    try:
        parsed = make_url(bare)
    except ArgumentError:  # not a URL SQLAlchemy reads at all
        return None
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database).resolve()


@dataclass(frozen=True)
class DataDirState:
    """The embedded default's state under a data dir."""

    catalog: Path  # the catalog's database file: its presence marks a lucidrec data dir
    model_store: Path
    paths: list[Path]  # everything to delete: the databases with their journals, the beat
    # schedule, the model store


def data_dir_state(settings: Settings, data: Path) -> DataDirState:
    """Where the state of ``settings`` lives under ``data``.

    Refuses when a store lives elsewhere (PostgreSQL, Redis, a shared model store):
    a reset that cleared only part of the state would leave codes and models that
    disagree."""
    stores = {
        "catalog.url": settings.catalog.url,
        "workers.broker_url": settings.workers.broker_url,
        "workers.result_backend": settings.workers.result_backend,
    }
    files = {key: sqlite_file(url) for key, url in stores.items()}
    model_store = Path(settings.model_store).resolve()
    outside = [key for key, file in files.items() if file is None or not file.is_relative_to(data)]
    if model_store == data or not model_store.is_relative_to(data):
        outside.append("model_store")
    if outside:
        raise ResetRefusedError(
            f"--reset clears only state kept under data_dir ({data}); {', '.join(outside)} "
            "point elsewhere: clear those stores by hand"
        )
    databases = [file for file in files.values() if file is not None]
    paths = [Path(f"{file}{suffix}") for file in databases for suffix in SQLITE_SIDECARS]
    paths += [data / f"celerybeat-schedule{suffix}" for suffix in SHELVE_SUFFIXES]
    return DataDirState(databases[0], model_store, [*paths, model_store])


def reset_demo(settings: Settings) -> list[Path]:
    """Delete the service's state under ``settings.data_dir`` (catalog, broker, results, beat
    schedule, models) for ``serve --demo --reset``; returns what was deleted.

    Only the embedded default's files are touched, never anything else in the folder
    (an experiments file, logs, media), and only when the folder looks like a lucidrec
    data dir: it holds the catalog, and the model store holds only lucidrec's folders.
    Call it before anything opens the stores (``serve`` does, before its worker starts).
    """
    data = Path(settings.data_dir).resolve()
    if not data.is_dir():
        return []
    state = data_dir_state(settings, data)
    present = [path for path in state.paths if path.exists()]
    if not present:
        return []
    if not state.catalog.is_file():
        raise ResetRefusedError(
            f"{data} does not look like a lucidrec data dir (no catalog at {state.catalog}); "
            "nothing was deleted"
        )
    store = state.model_store
    foreign = (
        sorted(set(p.name for p in store.iterdir()) - MODEL_STORE_ENTRIES) if store.is_dir() else []
    )
    if foreign:
        raise ResetRefusedError(
            f"the model store {store} holds {', '.join(foreign)}, which lucidrec does not "
            "write; nothing was deleted"
        )
    for path in present:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    logger.info("demo: reset %s (%d paths deleted)", data, len(present))
    return present
