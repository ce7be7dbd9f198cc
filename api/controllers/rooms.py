"""Rooms: their slices go to the encode queue; their status and codes come from the catalog."""

from __future__ import annotations

import msgspec
from litestar import Controller, get, post
from litestar.datastructures import State
from litestar.exceptions import NotFoundException

from api.openapi import API_KEY, problems, request_example, success
from api.schemas import PathId, RoomOut, SlicesBody, TaskAccepted
from api.security import require_api_key
from quantizer import format_lucid
from workers.catalog import RoomView

SLICES_EXAMPLE = {
    "slices": [
        {
            "slice_id": "r1-0007",
            "ts": 1732265000.0,
            "title": "Ramen night",
            "ocr": "SPICY MISO",
            "asr": "so now the broth...",
            "author": "chef kim",
            "comments": ["looks great"],
            "tags": ["cooking", "live"],
            "frames": [{"path": "r1/0007-a.jpg"}],
        }
    ]
}
QUEUED_EXAMPLE = {
    "task_id": "0f6b7c1e-3f0e-4a8e-9b7d-2c4a1e5f6a7b",
    "status_url": "/v1/tasks/0f6b7c1e-3f0e-4a8e-9b7d-2c4a1e5f6a7b",
}
ROOM_EXAMPLE = {
    "room_id": "r1",
    "status": "live",
    "started_at": 1732264000.0,
    "ended_at": None,
    "last_slice_at": 1732265000.0,
    "n_slices": 10,
    "lucid": "12-3-40-7",
    "latest_slice_lucid": "12-3-40-2",
    "codebook_version": "20261122T082918-bad06bd117",
    "codes_pending": False,
}
ENDED_EXAMPLE = ROOM_EXAMPLE | {"status": "ended", "ended_at": 1732265100.0}
NO_ROOM = "no room 'r404': post its slices first"


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
        summary="Queue a room's slices for encoding",
        status_code=202,
        guards=[require_api_key],
        security=[{API_KEY: []}],
        sync_to_thread=True,
        operation_class=request_example("One slice with its text and a frame", SLICES_EXAMPLE),
        responses={
            **success(202, TaskAccepted, QUEUED_EXAMPLE, "Queued: poll status_url."),
            **problems(400, 401, 413),
        },
    )
    def post_slices(self, room_id: PathId, data: SlicesBody, state: State) -> TaskAccepted:
        """Queue a batch of the room's slices for encoding; poll the task for the outcome."""
        result = state.services.celery.send_task(
            "lucidrec.encode.slices",
            args=[room_id, msgspec.to_builtins(data.slices)],
            queue="encode",
        )
        return TaskAccepted(task_id=result.id, status_url=f"/v1/tasks/{result.id}")

    @get(
        "/{room_id:str}",
        operation_id="getRoom",
        summary="A room's status and codes",
        sync_to_thread=True,
        responses={
            **success(200, RoomOut, ROOM_EXAMPLE, "The room."),
            **problems(400, 404, details={404: NO_ROOM}),
        },
    )
    def get_room(self, room_id: PathId, state: State) -> RoomOut:
        """The room's status and its codes under the active codebook."""
        room = state.services.catalog.room(room_id)
        if room is None:
            raise NotFoundException(detail=f"no room {room_id!r}: post its slices first")
        return room_out(room)

    @post(
        "/{room_id:str}/end",
        operation_id="endRoom",
        summary="End a room",
        status_code=200,
        guards=[require_api_key],
        security=[{API_KEY: []}],
        sync_to_thread=True,
        responses={
            **success(200, RoomOut, ENDED_EXAMPLE, "The room, ended."),
            **problems(400, 401, 404, details={404: "no room 'r404'"}),
        },
    )
    def end_room(self, room_id: PathId, state: State) -> RoomOut:
        """Mark the room ended: it leaves retrieval (given candidates can still name it)."""
        services = state.services
        if not services.catalog.end_room(room_id):
            raise NotFoundException(detail=f"no room {room_id!r}")
        return room_out(services.catalog.room(room_id))
