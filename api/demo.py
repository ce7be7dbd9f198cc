"""A demo catalog the project draws itself, for ``lucidrec serve --demo`` on a fresh data dir.

Six topics, a few rooms each, a few slices per room with titles, transcripts,
tags, an author and a frame drawn with PIL (shapes in the topic's colours).
The slices go through the real encode queue, a first codebook is fitted on
them, and a first batch of synthetic engagement events trains the ranker, so
``/v1/rank`` answers with ranked rooms a minute after the first start.
"""

from __future__ import annotations

import base64
import io
import time

import numpy as np
from celery import Celery
from PIL import Image, ImageDraw
from tqdm.auto import tqdm

from configs import Settings
from workers.catalog import Catalog
from workers.codebooks import retrain_from_catalog

TOPICS = {
    "cooking": ((220, 120, 40), "pasta sauce garlic oven recipe kitchen chef tomato basil dough"),
    "gaming": ((60, 60, 200), "speedrun boss level controller platformer stream glitch arcade"),
    "music": ((150, 40, 160), "guitar chords piano song melody singer acoustic band rhythm"),
    "sports": ((30, 150, 60), "football goal match team league training coach stadium score"),
    "travel": ((40, 160, 200), "city walk street market beach mountain train hostel sunset"),
    "chess": ((90, 90, 90), "opening gambit endgame blitz knight bishop checkmate rook pawn"),
}
ROOMS_PER_TOPIC = 6
SLICES_PER_ROOM = 10


def draw_frame(colour: tuple[int, int, int], seed: int) -> str:
    """A 96x96 PNG with a few shapes in ``colour``, base64-encoded."""
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


def demo_slices(topic: str, room: int, now: float) -> list[dict]:
    colour, vocabulary = TOPICS[topic]
    words = vocabulary.split()
    rng = np.random.default_rng(list(TOPICS).index(topic) * 100 + room)
    out = []
    for i in range(SLICES_PER_ROOM):
        out.append(
            {
                "slice_id": f"demo-{topic}-{room}-{i:02d}",
                "ts": now - (SLICES_PER_ROOM - i) * 120.0,
                "title": f"{topic} live: {' '.join(rng.choice(words, 3))}",
                "asr": " ".join(rng.choice(words, 40)),
                "author": f"{topic}_streamer_{room}",
                "tags": [topic, *rng.choice(words, 2)],
                "frames": [{"data": draw_frame(colour, room * 100 + i)}],
            }
        )
    return out


def demo_events(catalog: Catalog, now: float, n_users: int = 60) -> list[dict]:
    """Users with one favourite topic click its rooms and skip the others."""
    rooms = catalog.rooms()
    rng = np.random.default_rng(0)
    topics = list(TOPICS)
    events = []
    for u in range(n_users):
        favourite = topics[u % len(topics)]
        for j, room in enumerate(rng.choice(rooms, 20, replace=False)):
            liked = room.room_id.startswith(f"demo-{favourite}")
            events.append(
                {
                    "event_id": f"demo-e{u}-{j}",
                    "ts": now - 60 + j,
                    "user_id": f"demo-user-{u}",
                    "room_id": room.room_id,
                    "context": {"hour": 20, "weekday": 5, "device": 1},
                    "labels": {"click": 1.0, "watch_s": 90.0} if liked else {},
                }
            )
    return events


def seed_demo(settings: Settings, celery: Celery, timeout_s: float = 600) -> bool:
    """Seed an empty catalog (False, doing nothing, if it has rooms already)."""
    catalog = Catalog(settings.catalog.url)
    try:
        if catalog.rooms():
            return False
        now = time.time()
        sent = [
            celery.send_task(
                "lucidrec.encode.slices",
                queue="encode",
                args=[f"demo-{topic}-{room}", demo_slices(topic, room, now)],
            )
            for topic in TOPICS
            for room in range(ROOMS_PER_TOPIC)
        ]
        for result in tqdm(sent, desc="demo: encoding rooms", unit="room"):
            result.get(timeout=timeout_s, interval=0.05)
        retrain_from_catalog(settings, progress=True)
        celery.send_task(
            "lucidrec.train.events", queue="train", args=[demo_events(catalog, now)]
        ).get(timeout=timeout_s, interval=0.05)
        celery.send_task(
            "lucidrec.train.maintain", queue="train", kwargs={"publish_now": True}
        ).get(timeout=timeout_s, interval=0.05)
        return True
    finally:
        catalog.close()
