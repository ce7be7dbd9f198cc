"""The popularity baseline scores on earlier chunks' counts, then counts, like the trainer."""

from __future__ import annotations

import numpy as np
import pytest

from api.evaluation.popularity import Popularity
from api.evaluation.protocol import ReplayConfig
from api.evaluation.replay import Stream, replay
from api.evaluation.rooms import Rooms
from api.evaluation.sampling import Probes
from configs.ranker import RankerSettings
from ranker import EventBatch, id_keys
from tests.unit.evaluation.helpers import dataset

DAY = 86400.0


def _settings() -> RankerSettings:
    return ReplayConfig().ranker_settings(RankerSettings(), "popularity", content_dim=8)


def _batch(rooms: list[str], ts: list[float], clicks: list[float]) -> EventBatch:
    n = len(rooms)
    return EventBatch(
        ts=np.asarray(ts),
        user=id_keys(["u"] * n),
        room=id_keys(rooms),
        room_lucid=np.zeros((n, 3), dtype=np.int64),
        slice_lucid=np.zeros((n, 3), dtype=np.int64),
        room_age_s=np.zeros(n),
        context=np.zeros((n, 0), dtype=np.int64),
        labels={"click": np.asarray(clicks)},
    )


def test_ranks_the_most_engaged_room_first_at_the_longest_half_life() -> None:
    popularity = Popularity(_settings())
    assert popularity.half_life_s == 30 * DAY
    popularity.learn(_batch(["a", "a", "a", "b", "c", "c"], [0.0] * 6, [1, 1, 1, 1, 0, 0]))
    scores = popularity.score(_batch(["c", "b", "a", "new"], [0.0] * 4, [0] * 4))
    assert scores.tolist() == [0.0, 1.0, 3.0, 0.0]  # impressions alone count for nothing
    # decayed to each event's own time: one half-life later, half the count
    later = popularity.score(_batch(["a", "a"], [0.0, 30 * DAY], [0, 0]))
    assert later == pytest.approx([3.0, 1.5])


def test_replay_scores_each_chunk_before_counting_it() -> None:
    # room 0 clicked in every event; chunks of two rows, no sampled impressions
    data = dataset(["u0", "u1", "u2", "u3", "u4"], [0, 0, 0, 0, 1], [0.0, 1.0, 2.0, 3.0, 4.0])
    settings = _settings()
    rooms = Rooms.build(data, None)
    stream = Stream.build(data, rooms, np.full((5, 0), -1), settings)
    probes = Probes(np.array([4]), np.array([[1, 0]]), short=0)
    codes = np.zeros((2, 3), dtype=np.int64)
    scores, probe_scores = replay(
        stream, Popularity(settings), probes, codes, chunk=2, desc="popularity", progress=False
    )
    # chunk 1 (events 0, 1) sees nothing, chunk 2 their 2 clicks, chunk 3 all 4 (seconds
    # of decay at a 30-day half-life are below the tolerance)
    assert scores == pytest.approx([0, 0, 2, 2, 0])
    assert probe_scores[0] == pytest.approx([0, 4])
