"""In-session state: engagement counts feed exploration, count uncoded rooms at the room
level only, and stay bounded by the room-row TTL."""

from __future__ import annotations

import numpy as np

from api.serving.rooms import RoomTable
from api.serving.session import SessionState
from configs import load_settings
from ranker import id_keys
from ranker.engagement import FEATURES_PER_HALF_LIFE
from workers.catalog import RoomView
from workers.messages import EventMessage

RANKER = load_settings("test").ranker
DAY = 86400.0


def room(room_id: str, codes: tuple[int, ...] | None = (1, 2, 3)) -> RoomView:
    vector = np.ones(4, dtype=np.float32) / 2
    return RoomView(room_id, "live", 0.0, None, 0.0, 1, 0.0, vector, codes, codes, "v1")


def impressions(room_ids: list[str], ts: float, clicked: bool = False) -> list[EventMessage]:
    labels = {"click": 1.0} if clicked else {}
    return [
        EventMessage(event_id=f"e-{r}-{ts}", ts=ts, user_id="u", room_id=r, labels=labels)
        for r in room_ids
    ]


def test_exploration_reads_clicks_and_impressions_decayed_at_the_longest_half_life() -> None:
    state = SessionState(RANKER)
    table = RoomTable.build([room("a"), room("b")], 3)
    state.record(impressions(["a"], 100.0, clicked=True) + impressions(["a", "a"], 100.0), table)
    clicks, shown = state.counts(id_keys(["a", "b"]), now=100.0)
    assert clicks.tolist() == [1.0, 0.0] and shown.tolist() == [3.0, 0.0]
    half_life = RANKER.engagement.half_lives_s[-1]
    clicks, shown = state.counts(id_keys(["a"]), now=100.0 + half_life)
    np.testing.assert_allclose([clicks[0], shown[0]], [0.5, 1.5])


def test_events_on_rooms_without_codes_count_for_the_room_not_for_any_prefix() -> None:
    """An uncoded room's LUCID reads as zeros: its events must not land on the prefixes
    of a room whose code really is (0, 0, 0)."""
    state = SessionState(RANKER)
    table = RoomTable.build([room("pending", None), room("zero", (0, 0, 0))], 3)
    state.record(impressions(["pending", "unknown"] * 5, 100.0, clicked=True), table)
    assert state.counts(id_keys(["pending", "unknown"]), now=100.0)[1].tolist() == [5.0, 5.0]
    stats = state.stats(id_keys(["zero"]), np.zeros((1, 3), dtype=np.int64), 100.0)
    per_half_life = stats[0].reshape(len(RANKER.engagement.half_lives_s), FEATURES_PER_HALF_LIFE)
    assert (per_half_life[:, :5] == 0).all()  # the room "zero": no impressions, no positives
    assert (per_half_life[:, 9] == 0).all()  # its code (0, 0, 0): no impressions either
    assert (per_half_life[:, 10] > 0).all()  # its click rate: the all-rooms rate, which counted


def test_rooms_idle_for_the_ttl_are_forgotten_as_the_trainer_forgets_them() -> None:
    state = SessionState(RANKER)
    live, old = ["live-a", "live-b"], [f"old-{i}" for i in range(3)]
    table = RoomTable.build([room(r) for r in live + old], 3)
    state.record(impressions(old, 0.0), table)
    later = RANKER.sparse.ttl_s + RANKER.sparse.expire_every_s
    state.record(impressions(live, later, clicked=True), table)
    assert len(state.engagement) == len(live)
    clicks, shown = state.counts(id_keys(live), now=later)
    assert clicks.tolist() == [1.0, 1.0] and shown.tolist() == [1.0, 1.0]
    assert state.counts(id_keys(["old-0"]), now=later)[1].tolist() == [0.0]  # read as unseen
