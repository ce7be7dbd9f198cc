"""In-session state: exploration counts stay bounded by the live rooms."""

from __future__ import annotations

import numpy as np
import pytest

from api.serving import session as session_module
from api.serving.rooms import RoomTable
from api.serving.session import SessionState
from configs import load_settings
from ranker import id_keys
from workers.catalog import RoomView
from workers.messages import EventMessage


def room(room_id: str, status: str) -> RoomView:
    vector = np.ones(4, dtype=np.float32) / 2
    return RoomView(room_id, status, 0.0, None, 0.0, 1, 0.0, vector, (1, 2, 3), (1, 2, 3), "v1")


def impressions(room_ids: list[str], clicked: bool = False) -> list[EventMessage]:
    labels = {"click": 1.0} if clicked else {}
    return [
        EventMessage(event_id=f"e-{r}", ts=1.0, user_id="u", room_id=r, labels=labels)
        for r in room_ids
    ]


def test_counts_of_ended_rooms_are_dropped_once_the_counters_pass_the_cap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(session_module, "MAX_ROOMS", 4)
    state = SessionState(load_settings("test").ranker)
    live = ["live-a", "live-b"]
    table = RoomTable.build(
        [room(r, "live") for r in live] + [room(f"old-{i}", "ended") for i in range(3)], 3
    )
    state.record(impressions(live, clicked=True), table)
    state.record(impressions([f"old-{i}" for i in range(3)]), table)  # 5 rooms > cap 4
    assert len(state.room_counts) == len(live)
    clicks, shown = state.counts(id_keys(live))
    assert clicks.tolist() == [1.0, 1.0] and shown.tolist() == [1.0, 1.0]
    assert state.counts(id_keys(["old-0"]))[1].tolist() == [0.0]  # forgotten, read as unseen
