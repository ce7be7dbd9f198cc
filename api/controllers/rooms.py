"""Rooms: their slices go to the encode queue; their status and codes come from the catalog."""

from __future__ import annotations

import msgspec
from litestar import Controller, get, post
from litestar.datastructures import State
from litestar.exceptions import NotFoundException

from api.schemas import PathId, RoomOut, SlicesBody, TaskAccepted
from api.security import require_api_key
from quantizer import format_lucid
from workers.catalog import RoomView


def room_out(room: RoomView) -> RoomOut:
    return RoomOut(
        room_id=room.room_id,
        status=room.status,
        started_at=room.started_at,
        ended_at=room.ended_at,
        last_slice_at=room.last_slice_at,
        n_slices=room.n_slices,
        lucid=format_lucid(room.room_lucid) if room.room_lucid else None,
        latest_slice_lucid=(
            format_lucid(room.latest_slice_lucid) if room.latest_slice_lucid else None
        ),
        codebook_version=room.codebook_version,
        codes_pending=room.room_lucid is None,
    )


class RoomsController(Controller):
    path = "/v1/rooms"
    tags = ["rooms"]

    @post(
        "/{room_id:str}/slices",
        operation_id="postSlices",
        status_code=202,
        guards=[require_api_key],
        sync_to_thread=True,
    )
    def post_slices(self, room_id: PathId, data: SlicesBody, state: State) -> TaskAccepted:
        """Queue a batch of the room's slices for encoding; poll the task for the outcome."""
        result = state.services.celery.send_task(
            "lucidrec.encode.slices",
            args=[room_id, msgspec.to_builtins(data.slices)],
            queue="encode",
        )
        return TaskAccepted(task_id=result.id, status_url=f"/v1/tasks/{result.id}")

    @get("/{room_id:str}", operation_id="getRoom", sync_to_thread=True)
    def get_room(self, room_id: PathId, state: State) -> RoomOut:
        """The room's status and its codes under the active codebook."""
        room = state.services.catalog.room(room_id)
        if room is None:
            raise NotFoundException(detail=f"no room {room_id!r}: post its slices first")
        return room_out(room)

    @post(
        "/{room_id:str}/end",
        operation_id="endRoom",
        status_code=200,
        guards=[require_api_key],
        sync_to_thread=True,
    )
    def end_room(self, room_id: PathId, state: State) -> RoomOut:
        """Mark the room ended: it leaves retrieval (given candidates can still name it)."""
        services = state.services
        if not services.catalog.end_room(room_id):
            raise NotFoundException(detail=f"no room {room_id!r}")
        return room_out(services.catalog.room(room_id))
