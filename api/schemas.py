"""Request and response bodies of the REST API (msgspec Structs; OpenAPI comes from them).

The id rules live here, once, for every id of every route (bodies and paths): the API
is where untrusted input enters. Every id column of the catalog is
``String(ID_LENGTH)`` (:mod:`workers.catalog.schema`); PostgreSQL enforces the width
and SQLite does not, so the API holds ids to that many characters whatever the
backend, and to printable ASCII, which needs no escaping in a URL path, a Redis key or
a log line, and holds no NUL (which PostgreSQL refuses in text) nor control characters.

The event and slice bodies are the workers' messages (:mod:`workers.messages`) with
their ids and frames narrowed to these rules; what the worker receives is unchanged.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar.params import Parameter
from msgspec import Meta

from workers import messages
from workers.catalog.schema import ID_LENGTH

# ``(?![\s\S])`` ends the match at the end of the string in Python and in the schema's
# ECMA regex alike; Python's ``$`` also matches before a final newline.
ID_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.:@+=|~-]*(?![\s\S])"
ID_RULE = (
    f"1 to {ID_LENGTH} characters among letters, digits and _ . : @ + = | ~ -, "
    "the first a letter, a digit or _"
)
Id = Annotated[
    str, Meta(min_length=1, max_length=ID_LENGTH, pattern=ID_PATTERN, description=ID_RULE)
]
# the same rule for an id in a URL path (Litestar reads a path parameter's constraints here)
PathId = Annotated[
    str,
    Parameter(min_length=1, max_length=ID_LENGTH, pattern=ID_PATTERN, description=ID_RULE),
]
# an A/B label ("experiment:variant", joined by "+" for several experiments): the id
# characters, longer, since each experiment adds up to 130 of them (configs.experiments)
Label = Annotated[str, Meta(min_length=1, max_length=1024, pattern=ID_PATTERN)]
# a frame path is relative to (or inside) workers.media_root: any text without control
# characters (C0, DEL, C1)
FramePath = Annotated[
    str, Meta(min_length=1, max_length=1024, pattern=r"^[^\x00-\x1f\x7f-\x9f]+(?![\s\S])")
]
# a context value; its feature's size (ranker.context) bounds it further at the API
# (:mod:`api.validation`), int64 here because the ranker's arrays hold int64
ContextValue = Annotated[int, Meta(ge=0, le=2**63 - 1)]


def is_id(value: str) -> bool:
    """Whether ``value`` follows the id rules (for ids that arrive outside a body)."""
    try:
        msgspec.convert(value, Id)
    except msgspec.ValidationError:
        return False
    return True


class RankBody(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Rank rooms for a user: the given candidates, or live rooms retrieved for them."""

    user_id: Id
    context: dict[str, ContextValue] = msgspec.field(default_factory=dict)
    candidates: Annotated[list[Id], Meta(max_length=5000)] | None = None
    k: Annotated[int, Meta(ge=1, le=500)] = 20
    exclude: Annotated[list[Id], Meta(max_length=5000)] = msgspec.field(default_factory=list)
    # give the request_id of an earlier response to replay it (same list while it is kept)
    request_id: Id | None = None


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


class EventIn(messages.EventMessage, kw_only=True):
    """An event as the API takes it: its ids held to the id rules, its context to int64."""

    event_id: Id
    user_id: Id
    room_id: Id
    slice_id: Id | None = None
    request_id: Id | None = None
    variant: Label | None = None
    context: dict[str, ContextValue] = msgspec.field(default_factory=dict)


class EventsBody(msgspec.Struct, forbid_unknown_fields=True):
    events: Annotated[list[EventIn], Meta(min_length=1, max_length=1000)]


class EventsAccepted(msgspec.Struct, kw_only=True):
    accepted: int
    duplicates: int
    task_id: str | None


class FrameIn(messages.Frame):
    """A frame as the API takes it: ``data`` must be valid base64 (msgspec decodes it, and
    encodes it again for the worker), ``path`` printable. Whether the bytes are an image
    the encode task tells, per slice."""

    data: bytes | None = None
    path: FramePath | None = None


class SliceIn(messages.SliceMessage, kw_only=True):
    """A slice as the API takes it: its id held to the id rules, its frames checked."""

    slice_id: Id
    frames: list[FrameIn] = msgspec.field(default_factory=list)


class SlicesBody(msgspec.Struct, forbid_unknown_fields=True):
    slices: Annotated[list[SliceIn], Meta(min_length=1, max_length=64)]


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
