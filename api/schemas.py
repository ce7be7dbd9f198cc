"""Request and response bodies of the REST API (msgspec Structs; OpenAPI comes from them).

The id rules live here, once, for every id of every route (bodies and paths): the API
is where untrusted input enters. Every id column of the catalog is
``String(ID_LENGTH)`` (:mod:`workers.catalog.schema`); PostgreSQL enforces the width
and SQLite does not, so the API holds ids to that many characters whatever the
backend, and to printable ASCII, which needs no escaping in a URL path, a Redis key or
a log line, and holds no NUL (which PostgreSQL refuses in text) nor control characters.

The event and slice bodies are the workers' messages (:mod:`workers.messages`) with
their ids and frames narrowed to these rules; what the worker receives is unchanged.
Their other fields are declared again here only to describe them in the OpenAPI schema:
same types, same defaults.

Every field carries a ``Meta(description=...)`` (and an example where one helps): a
client generated from the schema documents itself. What depends on the deployment
(the context features of ``ranker.context``) is added to the schema when the app is
built (:mod:`api.openapi`); the label keys are :data:`LABEL_DOCS`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from litestar.params import Parameter
from msgspec import UNSET, Meta, UnsetType

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

# What each label an event may carry means (keys: workers.messages.EVENT_LABELS; the
# ranker trains on ranker.LABELS, the first four). The OpenAPI schema lists them.
LABEL_DOCS = {
    "click": "1 if the user opened the room from this impression, else 0. Trains the click task.",
    "watch_s": (
        "Seconds the user watched the room. Trains the quality_watch task, positive from "
        "ranker.tasks.quality_watch_s (30 s by default)."
    ),
    "like": "1 if the user liked the room, else 0. Trains the like task.",
    "follow": "1 if the user followed the room's streamer, else 0. Trains the follow task.",
    "comment": "1 (or a count) if the user commented. Logged with the event, not trained on.",
    "gift": "1 (or a count) if the user sent a gift. Logged with the event, not trained on.",
}
CONTEXT_RULE = (
    "Small categorical features of the request, by name: the features of the deployment's "
    "ranker.context (listed as properties, each an integer in [0, size)). An unknown name "
    "or a value past its feature's size is a 400: the ranker would read it as 0, silently."
)
CONTEXT_EXAMPLE = {"hour": 20, "weekday": 5, "device": 1}


def is_id(value: str) -> bool:
    """Whether ``value`` follows the id rules (for ids that arrive outside a body)."""
    try:
        msgspec.convert(value, Id)
    except msgspec.ValidationError:
        return False
    return True


def doc(description: str, *examples: Any) -> Meta:
    """A field's description, and its examples if any."""
    return (
        Meta(description=description, examples=list(examples))
        if examples
        else Meta(description=description)
    )


def id_doc(what: str, *examples: str) -> Meta:
    """An id field's description: what it names, then the id rules."""
    return doc(f"{what} An id: {ID_RULE}.", *examples)


class RankBody(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Rank rooms for a user: the given candidates, or live rooms retrieved for them."""

    user_id: Annotated[
        Id,
        id_doc(
            "The user to rank for: their A/B variant, in-session history and interests "
            "follow from it.",
            "u1",
        ),
    ]
    context: Annotated[dict[str, ContextValue], doc(CONTEXT_RULE, CONTEXT_EXAMPLE)] = msgspec.field(
        default_factory=dict
    )
    candidates: (
        Annotated[
            list[Id],
            Meta(
                max_length=5000,
                description=(
                    "Rooms to rank (ids, up to 5000; a repeated id counts once). Absent or "
                    "null: live rooms are retrieved for the user. Candidates the catalog does "
                    "not know, or whose codes are pending, come back in `unknown`."
                ),
                examples=[["r1", "r2", "r3"]],
            ),
        ]
        | None
    ) = None
    k: Annotated[
        int, Meta(ge=1, le=500, description="How many rooms to return, 1 to 500.", examples=[20])
    ] = 20
    exclude: Annotated[
        list[Id],
        Meta(
            max_length=5000,
            description=(
                "Rooms never to return (already shown, hidden by the user), up to 5000 ids; "
                "applies to given and retrieved candidates alike."
            ),
            examples=[["r9"]],
        ),
    ] = msgspec.field(default_factory=list)
    # give the request_id of an earlier response to replay it (same list while it is kept)
    request_id: (
        Annotated[
            Id,
            id_doc(
                "An earlier response's request_id, to replay it: the same body with it "
                "returns the same list while the response is kept (api.replay_ttl_s, 600 s); "
                "a different body with it is a 409. Leave it out to rank afresh."
            ),
        ]
        | None
    ) = None


class RankedRoom(msgspec.Struct, kw_only=True):
    """One room of a ranking, at its place in the list."""

    room_id: Annotated[str, doc("The room.", "r2")]
    score: Annotated[
        float,
        doc(
            "The ranker's score: serving.task_weights over the per-task probabilities in "
            "`scores`. The list is not sorted by it when the response's `order` is `mmr` "
            "(a room may follow one with a lower score), nor at an `explored` item.",
            1.49,
        ),
    ]
    scores: Annotated[
        dict[str, float],
        doc(
            "The ranker's probability per task (its heads: click, quality_watch, like, "
            "follow by default, as ranker.tasks.names sets them).",
            {"click": 0.54, "quality_watch": 0.41, "like": 0.12, "follow": 0.05},
        ),
    ]
    lucid: Annotated[
        str,
        doc(
            "The room's LUCID code under the active codebook: one code per level, joined by -.",
            "37-25-4-18",
        ),
    ]
    slice_lucid: Annotated[str, doc("The LUCID code of the room's newest slice.", "37-25-4-18")]
    explored: Annotated[
        bool,
        doc(
            "True when the room holds an exploration slot (serving.exploration_slots): a "
            "new room shown to learn how it does, placed whatever its score.",
            False,
        ),
    ] = False


RANK_ORDER_RULE = (
    "How `items` are ordered. `mmr`: diversified by maximal marginal relevance "
    "(serving.mmr_lambda < 1, 0.8 by default): each place goes to the room that best "
    "trades its score against its similarity to the rooms above it, so the list is not "
    "sorted by `score`. `score`: by descending `score` (serving.mmr_lambda = 1). Either "
    "way, items with `explored: true` hold exploration slots at evenly spaced places. "
    "Show the items in list order."
)


class RankResponse(msgspec.Struct, kw_only=True):
    """A ranking: the rooms to show, in the order to show them."""

    request_id: Annotated[
        str,
        doc(
            "This response's id: send it back in an event's request_id, or in a rank "
            "request to replay this list.",
            "4c1d2a0e9b7f4e55a1d3c2b1a0f9e8d7",
        ),
    ]
    variant: Annotated[
        str,
        doc(
            "The user's A/B label: experiment:variant pairs joined by +, or default.",
            "id_retirement:staged",
        ),
    ]
    ranker_variant: Annotated[str, doc("The ranker variant that scored.", "staged")]
    model_version: Annotated[
        str, doc("The served model: <trainer run>:<training step>.", "51a555a2:5")
    ]
    codebook_version: Annotated[
        str | None,
        doc(
            "The active codebook, which the LUCIDs are under; null before the first one.",
            "20261122T082918-bad06bd117",
        ),
    ]
    items: Annotated[
        list[RankedRoom],
        doc("Up to k rooms, in the order to show them: see `order` (not always by `score`)."),
    ]
    unknown: Annotated[
        list[str],
        doc(
            "Given candidates not ranked: unknown to the catalog, or with codes pending.",
            ["r3"],
        ),
    ]
    # a default, so that a replay kept by an older process still decodes
    order: Annotated[Literal["mmr", "score"], doc(RANK_ORDER_RULE, "mmr")] = "mmr"


class EventIn(messages.EventMessage, kw_only=True):
    """An impression or feedback event; an impression without labels is a negative."""

    event_id: Annotated[
        Id, id_doc("The event's own id: a repeated event_id is a duplicate, skipped.", "e-1")
    ]
    ts: Annotated[
        float,
        doc(
            "When it happened, in seconds since the Unix epoch; within [now - "
            "api.event_ts_past_s, now + api.event_ts_future_s] of the server's clock (six "
            "days and five minutes by default).",
            1732265010.0,
        ),
    ]
    user_id: Annotated[Id, id_doc("The user who saw or engaged with the room.", "u1")]
    room_id: Annotated[Id, id_doc("The room shown.", "r1")]
    slice_id: Annotated[Id, id_doc("The slice on screen, if known.", "r1-0007")] | None = None
    request_id: (
        Annotated[Id, id_doc("The request_id of the rank response that showed the room.")] | None
    ) = None
    variant: (
        Annotated[
            Label,
            doc(
                "The user's A/B label when shown; absent or null: the user's current one. "
                f"The id characters, up to 1024. {ID_RULE}.",
                "id_retirement:staged",
            ),
        ]
        | None
    ) = None
    position: Annotated[int, doc("The room's place in the list shown, from 0.", 3)] | None = None
    context: Annotated[dict[str, ContextValue], doc(CONTEXT_RULE, CONTEXT_EXAMPLE)] = msgspec.field(
        default_factory=dict
    )
    labels: Annotated[
        dict[str, float],
        doc(
            "What the user did, by label (listed as properties); none is an impression, a "
            "negative. The ranker trains on click, watch_s, like and follow.",
            {"click": 1, "watch_s": 95, "like": 0, "follow": 0},
        ),
    ] = msgspec.field(default_factory=dict)


class EventsBody(msgspec.Struct, forbid_unknown_fields=True):
    """A batch of events."""

    events: Annotated[
        list[EventIn],
        Meta(
            min_length=1,
            max_length=1000,
            description="1 to 1000 events; a repeated event_id counts once.",
        ),
    ]


class EventsAccepted(msgspec.Struct, kw_only=True):
    """Events recorded: in the catalog's event log, which the trainer trains from."""

    accepted: Annotated[int, doc("Events new to the catalog, recorded now.", 2)]
    duplicates: Annotated[
        int, doc("Events already received (by event_id), or repeated in the batch.", 0)
    ]
    task_id: Annotated[
        str | None,
        doc(
            "The trainer's wake-up task (GET /v1/tasks/{task_id}); null when nothing was new.",
            "0f6b7c1e-3f0e-4a8e-9b7d-2c4a1e5f6a7b",
        ),
    ]


class FrameIn(messages.Frame):
    """A frame of a slice: exactly one of ``data`` and ``path``. Whether the bytes are an
    image the encode task tells, per slice."""

    data: (
        Annotated[
            bytes,
            doc(
                "The image (JPEG, PNG, WebP, GIF or BMP), base64-encoded; invalid base64 is a 400."
            ),
        ]
        | None
    ) = None
    path: (
        Annotated[
            FramePath,
            doc(
                "A path under workers.media_root on the encode worker (printable, up to 1024 "
                "characters); a path that escapes it fails the slice.",
                "r1/0007-a.jpg",
            ),
        ]
        | None
    ) = None


class SliceIn(messages.SliceMessage, kw_only=True):
    """A few seconds of a room: its text and frames, encoded into the room's codes."""

    slice_id: Annotated[
        Id, id_doc("The slice's id: a slice the catalog holds already is skipped.", "r1-0007")
    ]
    ts: Annotated[float, doc("When the slice was live, in seconds since the Unix epoch.", 1.7e9)]
    title: Annotated[str, doc("The room's title at the time.", "Ramen night")] = ""
    ocr: Annotated[str, doc("Text read off the frames.", "SPICY MISO")] = ""
    asr: Annotated[str, doc("What was said (speech to text).", "so now the broth...")] = ""
    author: Annotated[str, doc("The streamer.", "chef kim")] = ""
    comments: Annotated[list[str], doc("Viewers' comments.", ["looks great"])] = msgspec.field(
        default_factory=list
    )
    tags: Annotated[list[str], doc("The room's tags.", ["cooking", "live"])] = msgspec.field(
        default_factory=list
    )
    frames: Annotated[
        list[FrameIn],
        doc(
            "Frames of the slice, up to workers.max_frames (16); a text-only encoder checks "
            "and ignores them."
        ),
    ] = msgspec.field(default_factory=list)


class SlicesBody(msgspec.Struct, forbid_unknown_fields=True):
    """A batch of a room's slices."""

    slices: Annotated[
        list[SliceIn],
        Meta(min_length=1, max_length=64, description="1 to 64 slices of the room."),
    ]


class TaskAccepted(msgspec.Struct, kw_only=True):
    """A queued task: poll ``status_url`` for its outcome."""

    task_id: Annotated[str, doc("The task.", "0f6b7c1e-3f0e-4a8e-9b7d-2c4a1e5f6a7b")]
    status_url: Annotated[
        str,
        doc(
            "Where its state is: GET it.",
            "/v1/tasks/0f6b7c1e-3f0e-4a8e-9b7d-2c4a1e5f6a7b",
        ),
    ]


class TaskStatus(msgspec.Struct, kw_only=True):
    """A task's state, and its result or error once it ran."""

    task_id: Annotated[str, doc("The task.", "0f6b7c1e-3f0e-4a8e-9b7d-2c4a1e5f6a7b")]
    state: Annotated[
        str,
        doc(
            "PENDING (queued, or unknown: Celery cannot tell them apart), STARTED, RETRY, "
            "SUCCESS or FAILURE.",
            "SUCCESS",
        ),
    ]
    result: Annotated[
        dict[str, Any] | None,
        doc(
            "On SUCCESS, the task's result; for an encode task: room_id, stored, skipped, "
            "failed (each slice that failed, with its reason), codebook_version, "
            "codes_pending.",
            {
                "room_id": "r1",
                "stored": 9,
                "skipped": [],
                "codebook_version": "20261122T082918-bad06bd117",
                "codes_pending": False,
                "failed": [{"slice_id": "r1-0008", "reason": "too many frames: 20, at most 16"}],
            },
        ),
    ] = None
    error: Annotated[
        str | None, doc("On FAILURE, <ExceptionType>: <message>.", "ValueError: bad payload")
    ] = None


class RoomOut(msgspec.Struct, kw_only=True):
    """A room: its status, and its codes under the active codebook."""

    room_id: Annotated[str, doc("The room.", "r1")]
    status: Annotated[Literal["live", "ended"], doc("live, or ended.", "live")]
    started_at: Annotated[
        float, doc("Its first slice's time, in seconds since the Unix epoch.", 1732264000.0)
    ]
    ended_at: Annotated[
        float | None, doc("When it ended (seconds since the Unix epoch); null while live.")
    ]
    last_slice_at: Annotated[
        float, doc("Its newest slice's time, in seconds since the Unix epoch.", 1732265000.0)
    ]
    n_slices: Annotated[int, doc("Slices stored for it.", 10)]
    lucid: Annotated[
        str | None,
        doc(
            "The room's LUCID code (a vote over its slices' codes); null while codes are pending.",
            "12-3-40-7",
        ),
    ]
    latest_slice_lucid: Annotated[
        str | None,
        doc("Its newest slice's LUCID code; null while codes are pending.", "12-3-40-2"),
    ]
    codebook_version: Annotated[
        str | None,
        doc("The codebook the codes are under; null before the first one.", "20261122T082918"),
    ]
    codes_pending: Annotated[
        bool,
        doc("True until a codebook is active and the room's slices have codes under it.", False),
    ]


class FieldProblem(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One problem of a request that does not validate."""

    message: Annotated[str, doc("What is wrong.", "Expected `int` <= 500")]
    key: (
        Annotated[
            str, doc("Where: the field's path in the body (events[3].ts), or the parameter.", "k")
        ]
        | UnsetType
    ) = UNSET
    source: (
        Annotated[
            Literal["body", "path", "query", "header", "cookie"],
            doc("Which part of the request holds it.", "body"),
        ]
        | UnsetType
    ) = UNSET


class Problem(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Every error's body: RFC 9457 problem details, as ``application/problem+json``."""

    status: Annotated[int, doc("The HTTP status code, as on the response.", 400)]
    title: Annotated[str, doc("The status code's reason phrase.", "Bad Request")]
    detail: Annotated[
        str,
        doc(
            "What went wrong, for a person: for a 400, the first problem (`extra` lists each).",
            "Validation failed for POST /v1/rank",
        ),
    ]
    extra: (
        Annotated[
            list[FieldProblem],
            doc(
                "400 only: each problem of the request, by key.",
                [{"message": "Expected `int` <= 500", "key": "k", "source": "body"}],
            ),
        ]
        | UnsetType
    ) = UNSET
