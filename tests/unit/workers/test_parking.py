"""Parking bounds: past the age bound an event goes, then the oldest beyond the count."""

from __future__ import annotations

from workers.catalog import LogEntry
from workers.messages import EventMessage
from workers.parking import Logged, apply_bounds


def waiting(position: int, appended_at: float) -> Logged:
    event = EventMessage(event_id=f"e{position}", ts=1.0, user_id="u", room_id="r")
    return Logged(LogEntry(position, event.event_id, "{}", appended_at), event)


def positions(events: list[Logged]) -> list[int]:
    return [w.entry.position for w in events]


def test_the_oldest_beyond_the_count_go_and_the_rest_stay_in_log_order() -> None:
    bounded = apply_bounds([waiting(p, 100.0) for p in (5, 1, 4, 2, 3)], 110.0, 3, 60)
    assert positions(bounded.kept) == [3, 4, 5]
    assert positions(bounded.too_many) == [1, 2] and bounded.too_old == []
    assert positions(bounded.dropped) == [1, 2]


def test_events_past_the_age_bound_go_first_and_do_not_count_against_the_count() -> None:
    events = [waiting(1, 10.0), waiting(2, 50.0), waiting(3, 95.0), waiting(4, 99.0)]
    bounded = apply_bounds(events, 100.0, 2, 50)
    assert positions(bounded.too_old) == [1]  # accepted 90 s ago; 50 s ago is still in
    assert positions(bounded.too_many) == [2] and positions(bounded.kept) == [3, 4]
    assert positions(apply_bounds(events, 100.0, 10, 1000).kept) == [1, 2, 3, 4]
