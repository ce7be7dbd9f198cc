"""Events -> the ranker's :class:`EventBatch`: codes looked up in the catalog, ids hashed.

An event's room LUCID is the room's code under the active codebook; its slice
LUCID is the code of the slice the user saw (``slice_id``) or else the room's
latest slice; its content is the room's embedding (what ``dense_content`` reads).
Events on rooms with no codes yet (unknown rooms, codes pending) cannot be
turned into features: they come back apart, and the train task parks them.

An event whose features cannot be built (a context value that is no 64-bit
integer, say) fails alone: the batch is built for all events at once, and only
if that fails, event by event, so the events that fail on their own come back
with their reasons and the rest still make a batch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from configs.ranker import RankerSettings
from ranker import LABELS, EventBatch, id_keys
from workers.catalog import Catalog, RoomView
from workers.messages import EventMessage


def context_array(settings: RankerSettings, contexts: Sequence[Mapping[str, int]]) -> np.ndarray:
    """(n, C) ints in the order of ``settings.context``; missing or out-of-range values -> 0.

    A value that is no 64-bit integer raises ``OverflowError``: the ranker's context is int64.
    """
    out = np.zeros((len(contexts), len(settings.context)), dtype=np.int64)
    for j, feature in enumerate(settings.context):
        column = np.array([c.get(feature.name, 0) for c in contexts], dtype=np.int64)
        out[:, j] = np.where((column >= 0) & (column < feature.size), column, 0)
    return out


def event_labels(events: Sequence[EventMessage]) -> dict[str, np.ndarray]:
    """The ranker's raw labels of ``events``, (n,) each; a label an event lacks is 0."""
    return {name: np.array([e.labels.get(name, 0.0) for e in events]) for name in LABELS}


def room_content(rooms: Sequence[RoomView], dim: int) -> np.ndarray:
    """(n, dim) float32: each room's embedding (its slices' mean), zeros for a room with none
    yet or with one of another width (an encoder whose ``out_dim`` is not
    ``ranker.content_dim``), which the ranker could not read."""
    out = np.zeros((len(rooms), dim), dtype=np.float32)
    for i, room in enumerate(rooms):
        if room.embedding is not None and len(room.embedding) == dim:
            out[i] = room.embedding
    return out


def failure(exc: BaseException) -> str:
    """The stored reason of an event that failed: the error's type and message."""
    return f"{type(exc).__name__}: {exc}"


@dataclass(frozen=True)
class BuiltBatch:
    """What :func:`build_batch` made of some events."""

    batch: EventBatch | None  # the events with codes and features, in time order
    no_codes: list[EventMessage] = field(default_factory=list)  # rooms unknown or uncoded
    failed: list[tuple[EventMessage, str]] = field(default_factory=list)  # with reasons


def build_batch(
    catalog: Catalog, settings: RankerSettings, events: Sequence[EventMessage]
) -> BuiltBatch:
    """The batch of ``events`` whose rooms have codes (in time order), the events whose
    rooms have none, and those whose features cannot be built (with their reasons)."""
    rooms = {r.room_id: r for r in catalog.rooms(room_ids=sorted({e.room_id for e in events}))}
    usable, no_codes = [], []
    for event in sorted(events, key=lambda e: e.ts):
        room = rooms.get(event.room_id)
        if room is None or room.room_lucid is None or room.latest_slice_lucid is None:
            no_codes.append(event)
        else:
            usable.append(event)
    if not usable:
        return BuiltBatch(None, no_codes)
    slice_codes = catalog.slice_codes(e.slice_id for e in usable if e.slice_id)
    try:
        return BuiltBatch(_assemble(usable, rooms, slice_codes, settings), no_codes)
    except Exception:  # some event cannot be built: find which, build the rest
        good, failed = [], []
        for event in usable:
            try:
                _assemble([event], rooms, slice_codes, settings)
                good.append(event)
            except Exception as exc:
                failed.append((event, failure(exc)))
        batch = _assemble(good, rooms, slice_codes, settings) if good else None
        return BuiltBatch(batch, no_codes, failed)


def _assemble(
    events: Sequence[EventMessage],
    rooms: Mapping[str, RoomView],
    slice_codes: Mapping[str, tuple[int, ...]],
    settings: RankerSettings,
) -> EventBatch:
    """The batch of ``events`` (in time order, rooms with codes)."""
    return EventBatch(
        ts=np.array([e.ts for e in events], dtype=np.float64),
        user=id_keys([e.user_id for e in events]),
        room=id_keys([e.room_id for e in events]),
        room_lucid=np.array([rooms[e.room_id].room_lucid for e in events], dtype=np.int64),
        slice_lucid=np.array(
            [
                slice_codes.get(e.slice_id or "", rooms[e.room_id].latest_slice_lucid)
                for e in events
            ],
            dtype=np.int64,
        ),
        room_age_s=np.array([max(0.0, e.ts - rooms[e.room_id].started_at) for e in events]),
        context=context_array(settings, [e.context for e in events]),
        labels=event_labels(events),
        content=room_content([rooms[e.room_id] for e in events], settings.content_dim),
    )
