"""Parking: events on rooms without codes wait, per ranker variant, until the room has codes.

A room's first events often arrive before its first slices are encoded and
coded (an encode task takes seconds, a codebook's first fit minutes), and those
are the events a new room most needs. So the trainer holds them (the
``parked_events`` table) and trains them, in time order with the events of the
moment, in the first chunk it takes from the log after the room's codes exist.
Waiting is bounded, in age (``workers.parked_max_age_s`` since the API accepted
the event) and in count (``workers.parked_max_events`` per variant; the oldest
beyond go first), so events for a room that never gets codes do not wait
forever: past a bound an event is dropped, counted in the engagement statistics
as before, and in ``lucidrec_parked_dropped_total``. Bounds are applied when the
trainer takes a chunk from the log, so on a silent log nothing moves.

**Engagement statistics.** The API counts an event when it is posted; on a
room without codes, for the room and for all rooms only. The trainer counts an
event once, when it leaves parking: a trained one as every trained event is
counted (its room, all rooms, and its code's prefixes: the room has codes by
then), a dropped one for its room and all rooms only. So the room rows and the
all-rooms row of the API and of the trainer agree once the parked events are
resolved (decay is exact and order-free: when an event is counted does not
change the counts), and a code's prefix rows on the trainer hold its rooms'
parked-then-trained events, which the API could not count under a code it did
not know yet. Counting parked events when parked instead would count each one
twice at the room level once it trains, since training always counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from workers.catalog import LogEntry
from workers.messages import EventMessage


@dataclass(frozen=True)
class Logged:
    """A log entry and the event it holds."""

    entry: LogEntry
    event: EventMessage


@dataclass(frozen=True)
class Waiting:
    """Events waiting for codes after the bounds: those kept, and those dropped by bound."""

    kept: list[Logged]
    too_old: list[Logged]
    too_many: list[Logged]

    @property
    def dropped(self) -> list[Logged]:
        return self.too_old + self.too_many


def apply_bounds(
    waiting: Sequence[Logged], now: float, max_events: int, max_age_s: float
) -> Waiting:
    """Of the events waiting for codes, drop those accepted more than ``max_age_s`` before
    ``now``, then the oldest beyond ``max_events``."""
    ordered = sorted(waiting, key=lambda w: w.entry.position)
    young = [w for w in ordered if now - w.entry.appended_at <= max_age_s]
    too_old = [w for w in ordered if now - w.entry.appended_at > max_age_s]
    excess = max(0, len(young) - max_events)
    return Waiting(kept=young[excess:], too_old=too_old, too_many=young[:excess])
