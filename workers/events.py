"""Events -> the ranker's :class:`EventBatch`: codes looked up in the catalog, ids hashed.

An event's room LUCID is the room's code under the active codebook; its slice
LUCID is the code of the slice the user saw (``slice_id``) or else the room's
latest slice; its content is the room's embedding (what ``dense_content`` reads).
Events on rooms with no codes yet cannot be turned into features and are
reported as skipped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from configs.ranker import RankerSettings
from ranker import LABELS, EventBatch, id_keys
from workers.catalog import Catalog, RoomView
from workers.messages import EventMessage


def context_array(settings: RankerSettings, contexts: Sequence[Mapping[str, int]]) -> np.ndarray:
    """(n, C) ints in the order of ``settings.context``; missing or out-of-range values -> 0."""
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


def build_batch(
    catalog: Catalog, settings: RankerSettings, events: Sequence[EventMessage]
) -> tuple[EventBatch | None, list[EventMessage]]:
    """The batch of ``events`` whose rooms have codes (in time order), and the events skipped."""
    rooms = {r.room_id: r for r in catalog.rooms(room_ids=sorted({e.room_id for e in events}))}
    usable, skipped = [], []
    for event in sorted(events, key=lambda e: e.ts):
        room = rooms.get(event.room_id)
        if room is None or room.room_lucid is None or room.latest_slice_lucid is None:
            skipped.append(event)
        else:
            usable.append(event)
    if not usable:
        return None, skipped
    slice_codes = {}
    for slice_id in {e.slice_id for e in usable if e.slice_id}:
        view = catalog.slice(slice_id)
        if view is not None and view.lucid is not None:
            slice_codes[slice_id] = view.lucid
    batch = EventBatch(
        ts=np.array([e.ts for e in usable], dtype=np.float64),
        user=id_keys([e.user_id for e in usable]),
        room=id_keys([e.room_id for e in usable]),
        room_lucid=np.array([rooms[e.room_id].room_lucid for e in usable], dtype=np.int64),
        slice_lucid=np.array(
            [
                slice_codes.get(e.slice_id or "", rooms[e.room_id].latest_slice_lucid)
                for e in usable
            ],
            dtype=np.int64,
        ),
        room_age_s=np.array([max(0.0, e.ts - rooms[e.room_id].started_at) for e in usable]),
        context=context_array(settings, [e.context for e in usable]),
        labels=event_labels(usable),
        content=room_content([rooms[e.room_id] for e in usable], settings.content_dim),
    )
    return batch, skipped
