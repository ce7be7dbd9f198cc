"""Exploration counts by room key against a plain Counter."""

from __future__ import annotations

from collections import Counter

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from api.serving.room_counts import RoomCounts

batches = st.lists(st.lists(st.tuples(st.integers(-5, 40), st.booleans()), max_size=30), max_size=8)


@settings(max_examples=60, deadline=None)
@given(batches=batches, kept=st.sets(st.integers(-5, 40)), keep_after=st.integers(0, 8))
def test_counts_match_a_counter_through_adds_and_a_keep(
    batches: list[list[tuple[int, bool]]], kept: set[int], keep_after: int
) -> None:
    counts, shown, clicks = RoomCounts(), Counter(), Counter()
    for i, batch in enumerate(batches):
        if i == keep_after:
            counts.keep(np.array(sorted(kept), dtype=np.int64))
            shown = Counter({k: n for k, n in shown.items() if k in kept})
            clicks = Counter({k: n for k, n in clicks.items() if k in kept})
        keys = np.array([k for k, _ in batch], dtype=np.int64)
        counts.add(keys, np.array([c for _, c in batch], dtype=bool))
        for key, clicked in batch:
            shown[key] += 1
            clicks[key] += clicked
    assert len(counts) == len(shown)
    probe = np.arange(-6, 42, dtype=np.int64)
    got_clicks, got_shown = counts.get(probe)
    assert got_shown.tolist() == [float(shown[k]) for k in probe.tolist()]
    assert got_clicks.tolist() == [float(clicks[k]) for k in probe.tolist()]
