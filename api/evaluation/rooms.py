"""Rooms of a replay: an item's events, either all in one room or cut into short-lived rooms.

MovieLens items live for months, so an item-keyed replay gives an ID-based ranker
every advantage: an item's row trains for half a year. A live platform's rooms
last hours. ``--room-window S`` imitates that on the same log: time is cut into
slots of S seconds (aligned to the Unix epoch, so S = 86400 gives UTC days), and
an item's events within one slot form one room (``"{item_id}#{k}"``, k counting
the item's rooms in time order). A room is live for its whole slot: it starts at
the slot's start and ends S seconds later, so no room lives longer than S and
no event lies more than S after its room's first event.

A room keeps its item's content (text, codes, embedding), so the encoder and the
codebook still work per item, while the room key, the room's age, its earlier
events (cold and first-seen subsets), availability (probes and sampled
impressions) and its engagement counts start afresh with every room.

Why slots and not rooms that open at an item's first event after a gap: a room
that opens at a logged event cannot be shown before that event, so every room's
first event would be a logged pick and no sampled impression could ever land on
a room with no earlier events. Under a one-day window more than half the logged
events open their room, and "no earlier events" then gives the label away. A
room that is live for its whole slot can be shown before anyone picks it, as a
live room is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from api.evaluation.adapters import Dataset


@dataclass(frozen=True)
class Rooms:
    """Which room each event is in, and each room's item, id, start and availability."""

    event_room: np.ndarray  # (n,) room index of each event
    item: np.ndarray  # (rooms,) index of the room's item (its content)
    ids: list[str]  # (rooms,) room ids
    # (rooms,) available from: an item's start_time or first event; a room's slot start
    live_from: np.ndarray
    start_ts: np.ndarray  # (rooms,) where its age counts from
    live_until: np.ndarray  # (rooms,) available until (excluded): a slot's end; items: inf
    window_s: float | None  # None: one room per item

    def __len__(self) -> int:
        return len(self.item)

    @property
    def max_life_s(self) -> float:
        """No room is available longer than this after its first event."""
        return np.inf if self.window_s is None else self.window_s

    @classmethod
    def build(cls, data: Dataset, window_s: float | None) -> Rooms:
        """One room per item (``window_s`` None), else rooms of at most ``window_s`` seconds."""
        if window_s is None:
            return cls._per_item(data)
        return cls._windowed(data, window_s)

    @classmethod
    def _per_item(cls, data: Dataset) -> Rooms:
        n_items = len(data.slices)
        first = np.full(n_items, np.inf)
        np.minimum.at(first, data.item, data.ts)
        # an item's own start time when the log gives one (the room's start_time)
        start = np.where(np.isfinite(data.start_ts), data.start_ts, first)
        return cls(
            event_room=data.item,
            item=np.arange(n_items),
            ids=[s.slice_id for s in data.slices],
            live_from=np.minimum(start, first),
            start_ts=start,
            live_until=np.full(n_items, np.inf),
            window_s=None,
        )

    @classmethod
    def _windowed(cls, data: Dataset, window_s: float) -> Rooms:
        slot = np.floor(data.ts / window_s).astype(np.int64)
        pairs, event_room = np.unique(
            np.stack([data.item.astype(np.int64), slot], axis=1), axis=0, return_inverse=True
        )
        item, room_slot = pairs[:, 0], pairs[:, 1]  # sorted by item, then slot
        ordinal = np.arange(len(pairs)) - np.searchsorted(item, item, side="left")
        start = room_slot * window_s
        return cls(
            event_room=event_room.reshape(-1),
            item=item,
            ids=[
                f"{data.slices[i].slice_id}#{k}"
                for i, k in zip(item.tolist(), ordinal.tolist(), strict=True)
            ],
            live_from=start.astype(np.float64),
            start_ts=start.astype(np.float64),
            live_until=(start + window_s).astype(np.float64),
            window_s=window_s,
        )

    def by_start(self) -> tuple[np.ndarray, np.ndarray]:
        """Rooms sorted by first event, and their first events: a room available at t is in
        the slice that started in ``[t - max_life_s, t]`` of this order."""
        order = np.argsort(self.live_from, kind="stable")
        return order, self.live_from[order]

    def candidate_bounds(
        self, first_sorted: np.ndarray, ts: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per time, the ``[lo, hi)`` range of :meth:`by_start`'s order that holds every
        room available then (a superset: a window's rooms may have ended)."""
        hi = np.searchsorted(first_sorted, ts, side="right")
        lo = np.searchsorted(first_sorted, ts - self.max_life_s, side="left")
        return lo, hi

    def available(self, rooms: np.ndarray, ts: np.ndarray) -> np.ndarray:
        """Whether each room of ``rooms`` is available at the matching ``ts``: started at or
        before it and, under a window, with its slot not yet over."""
        return (self.live_from[rooms] <= ts) & (ts < self.live_until[rooms])
