"""Re-keying an item's events into rooms that live at most a window."""

from __future__ import annotations

import numpy as np

from api.evaluation.rooms import Rooms
from tests.unit.evaluation.helpers import dataset


def test_per_item_rooms_are_the_items_and_never_end() -> None:
    data = dataset(["a", "b", "a"], [1, 0, 1], [10.0, 20.0, 30.0])
    rooms = Rooms.build(data, None)
    assert rooms.event_room.tolist() == [1, 0, 1]
    assert rooms.ids == ["it0", "it1"] and rooms.item.tolist() == [0, 1]
    assert rooms.live_from.tolist() == [20.0, 10.0] and np.isinf(rooms.live_until).all()
    assert rooms.available(np.array([0, 1]), np.array([15.0, 15.0])).tolist() == [False, True]


def test_an_items_events_in_one_window_slot_form_one_room() -> None:
    # window 100: item 0 at 0 and 50 (slot 0), 100 and 101 (slot 1), 250 (slot 2);
    # item 1 at 10 (slot 0) and 105 (slot 1)
    data = dataset(
        ["a", "b", "a", "c", "a", "b", "c"],
        [0, 1, 0, 0, 0, 1, 0],
        [0.0, 10.0, 50.0, 100.0, 101.0, 105.0, 250.0],
    )
    rooms = Rooms.build(data, 100.0)
    assert rooms.ids == ["it0#0", "it0#1", "it0#2", "it1#0", "it1#1"]
    assert rooms.event_room.tolist() == [0, 3, 0, 1, 1, 4, 2]
    assert rooms.item.tolist() == [0, 0, 0, 1, 1]  # the content stays the item's
    assert rooms.live_from.tolist() == [0.0, 100.0, 200.0, 0.0, 100.0]
    assert rooms.start_ts.tolist() == rooms.live_from.tolist()  # age counts from the slot
    assert rooms.live_until.tolist() == [100.0, 200.0, 300.0, 100.0, 200.0]
    # live for the whole slot, before its first event too: it1#1 at 100, its pick at 105
    live = rooms.available(np.arange(5), np.full(5, 100.0))
    assert live.tolist() == [False, True, False, False, True]
    order, first = rooms.by_start()
    lo, hi = rooms.candidate_bounds(first, np.array([150.0]))
    # a superset of the rooms live at 150: those that started in [50, 150]
    assert set(order[lo[0] : hi[0]].tolist()) == {1, 4}


def test_an_item_with_a_start_time_is_live_from_it() -> None:
    data = dataset(["a", "b"], [0, 0], [10.0, 20.0])
    data.start_ts[0] = 5.0
    rooms = Rooms.build(data, None)
    assert rooms.live_from.tolist() == [5.0] and rooms.start_ts.tolist() == [5.0]
