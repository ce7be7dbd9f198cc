"""The replay stream: sampled impressions right after their event, with its user, time and
context and label 0; rooms carry their item's codes and content."""

from __future__ import annotations

import numpy as np

from api.evaluation.protocol import ReplayConfig, earlier_events
from api.evaluation.replay import Stream
from api.evaluation.rooms import Rooms
from configs.ranker import RankerSettings
from ranker import id_keys
from tests.unit.evaluation.helpers import dataset


def test_impressions_follow_their_event_and_rooms_read_their_items_content() -> None:
    data = dataset(["a", "b", "a"], [0, 1, 0], [0.0, 3600.0, 200_000.0], [1.0, 1.0, 0.0], 3)
    rooms = Rooms.build(data, 86400.0)  # item 0's second event is in the third day: it0#1
    assert rooms.ids == ["it0#0", "it0#1", "it1#0"]  # item 2 has no event, so no room
    sampled = np.array([[2, 1], [-1, -1], [2, -1]])
    settings = ReplayConfig().ranker_settings(RankerSettings(), "dense_content", content_dim=2)
    stream = Stream.build(data, rooms, sampled, settings)
    assert stream.logged_row.tolist() == [0, 3, 4]
    assert stream.room.tolist() == [0, 2, 1, 2, 1, 2]
    assert stream.ts.tolist() == [0.0, 0.0, 0.0, 3600.0, 200_000.0, 200_000.0]
    assert stream.label.tolist() == [1.0, 0.0, 0.0, 1.0, 0.0, 0.0]
    assert np.array_equal(stream.user, id_keys(["a", "a", "a", "b", "a", "a"]))
    assert (stream.context[1] == stream.context[0]).all()  # hour and weekday of the event
    codes = np.array([[1, 1, 1], [2, 2, 2], [3, 3, 3]])
    content = np.eye(3, 2, dtype=np.float32)
    batch = stream.batch(slice(3, 6), codes, content)
    assert np.array_equal(batch.room, id_keys(["it1#0", "it0#1", "it1#0"]))
    assert batch.room_lucid[:, 0].tolist() == [2, 1, 2]  # room it0#1 has item 0's code
    assert np.array_equal(batch.content, content[[1, 0, 1]])
    # ages count from each room's slot start: it0#1 lives from 172_800 (day 2)
    assert batch.room_age_s.tolist() == [3600.0, 27_200.0, 200_000.0]
    probe = stream.probe_batch(np.array([1]), np.array([[2, 0]]), codes, content)
    assert probe.ts.tolist() == [3600.0, 3600.0] and probe.room_age_s.tolist() == [3600.0, 3600.0]
    # earlier events count per room: item 0's second event is its new room's first
    assert earlier_events(rooms.event_room).tolist() == [0, 0, 0]
