"""Request and response bodies of the REST API (msgspec Structs; OpenAPI comes from them)."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from msgspec import Meta

from workers.messages import EventMessage, SliceMessage

Id = Annotated[str, Meta(min_length=1, max_length=128)]


class RankBody(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Rank rooms for a user: the given candidates, or live rooms retrieved for them."""

    user_id: Id
    context: dict[str, int] = msgspec.field(default_factory=dict)
    candidates: Annotated[list[Id], Meta(max_length=5000)] | None = None
    k: Annotated[int, Meta(ge=1, le=500)] = 20
    exclude: Annotated[list[Id], Meta(max_length=5000)] = msgspec.field(default_factory=list)
    # give the request_id of an earlier response to replay it (same list while it is kept)
    request_id: Annotated[str, Meta(min_length=1, max_length=64)] | None = None


class RankedRoom(msgspec.Struct, kw_only=True):
    room_id: str
    score: float
    scores: dict[str, float]
    lucid: str
    slice_lucid: str
    explored: bool = False


class RankResponse(msgspec.Struct, kw_only=True):
    request_id: str
    variant: str
    ranker_variant: str
    model_version: str
    codebook_version: str | None
    items: list[RankedRoom]
    unknown: list[str]


class EventsBody(msgspec.Struct, forbid_unknown_fields=True):
    events: Annotated[list[EventMessage], Meta(min_length=1, max_length=1000)]


class EventsAccepted(msgspec.Struct, kw_only=True):
    accepted: int
    duplicates: int
    task_id: str | None


class SlicesBody(msgspec.Struct, forbid_unknown_fields=True):
    slices: Annotated[list[SliceMessage], Meta(min_length=1, max_length=64)]


class TaskAccepted(msgspec.Struct, kw_only=True):
    task_id: str
    status_url: str


class TaskStatus(msgspec.Struct, kw_only=True):
    task_id: str
    state: str  # PENDING (unknown or queued), STARTED, SUCCESS, FAILURE, RETRY
    result: dict[str, Any] | None = None
    error: str | None = None


class RoomOut(msgspec.Struct, kw_only=True):
    room_id: str
    status: str
    started_at: float
    ended_at: float | None
    last_slice_at: float
    n_slices: int
    lucid: str | None
    latest_slice_lucid: str | None
    codebook_version: str | None
    codes_pending: bool
