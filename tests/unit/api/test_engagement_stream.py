"""The engagement stream's packed records: what a replica decodes is what was posted."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.serving.engagement import CountedEvents
from api.serving.engagement_stream import decode, encode, record_dtype
from api.serving.shared import SharedStateError

LEVELS = 4

event = st.tuples(
    st.floats(-1e12, 1e12, allow_nan=False),
    st.integers(-(2**63) + 1, 2**63 - 1),
    st.lists(st.integers(0, 2**16), min_size=LEVELS, max_size=LEVELS),
    st.booleans(),
    st.lists(st.booleans(), min_size=4, max_size=4),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(event, max_size=20))
def test_records_decode_to_the_events_encoded(events: list[tuple]) -> None:
    n = len(events)
    coded = np.array([e[3] for e in events], dtype=bool)
    posted = CountedEvents(
        ts=np.array([e[0] for e in events], dtype=np.float64),
        room=np.array([e[1] for e in events], dtype=np.int64),
        room_lucid=np.array([e[2] for e in events], dtype=np.int64).reshape(n, LEVELS)
        * coded[:, None],
        coded=coded,
        positives=np.array([e[4] for e in events], dtype=bool).reshape(n, 4),
    )
    fields = encode(posted)
    assert len(fields[b"events"]) == record_dtype(LEVELS).itemsize * n
    # as redis-py reads an entry back: bytes; split in two entries, decoded in order
    stored = {b"levels": str(fields[b"levels"]).encode(), b"events": fields[b"events"]}
    cut = record_dtype(LEVELS).itemsize * (n // 2)
    halves = [
        stored | {b"events": stored[b"events"][:cut]},
        stored | {b"events": stored[b"events"][cut:]},
    ]
    got = decode(halves, LEVELS)
    for field in ("ts", "room", "room_lucid", "coded", "positives"):
        np.testing.assert_array_equal(getattr(got, field), getattr(posted, field))
        assert getattr(got, field).dtype == getattr(posted, field).dtype


def test_an_entry_of_another_lucid_length_names_the_setting_replicas_must_share() -> None:
    entry = {b"levels": b"5", b"events": b"\x00" * record_dtype(LEVELS + 1).itemsize}
    with pytest.raises(SharedStateError, match=r"ranker\.lucid\.levels"):
        decode([entry], LEVELS)
