"""The JSON the encode task receives: slices with inline text and frames as data or paths.

A frame is ``{"data": "<base64 image bytes>"}`` or ``{"path": "relative/or/absolute.jpg"}``;
a path must resolve inside the configured media root. Everything is checked
here, per slice, so one bad slice fails alone with a reason while the rest of
its batch is stored.
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path
from typing import Annotated

import msgspec
from msgspec import Meta

from configs import WorkerSettings
from encoder import SliceInput, SliceInputError
from encoder.images import BadFrameError, FrameLoader
from workers.catalog.schema import ID_LENGTH

# An id the catalog can store on every backend (:func:`workers.catalog.schema.storable_id`):
# a longer one, or one with a NUL, is a DataError on PostgreSQL that no retry mends. The
# API holds ids to stricter rules (:mod:`api.schemas`); these are the workers' own floor,
# for whatever sends tasks directly.
CatalogId = Annotated[str, Meta(min_length=1, max_length=ID_LENGTH, pattern=r"^[^\x00]*$")]


class Frame(msgspec.Struct, forbid_unknown_fields=True):
    data: str | None = None
    path: str | None = None


class SliceMessage(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    slice_id: CatalogId
    ts: float
    title: str = ""
    ocr: str = ""
    asr: str = ""
    author: str = ""
    comments: list[str] = msgspec.field(default_factory=list)
    tags: list[str] = msgspec.field(default_factory=list)
    frames: list[Frame] = msgspec.field(default_factory=list)


class BadSliceError(ValueError):
    """A slice that cannot be encoded; the message is its stored failure reason."""


def parse_slice(raw: object) -> SliceMessage:
    """Decode one slice of a task payload, or raise :class:`BadSliceError` with the reason."""
    try:
        return msgspec.convert(raw, SliceMessage)
    except msgspec.ValidationError as exc:
        raise BadSliceError(f"invalid slice: {exc}") from None


def to_input(
    message: SliceMessage, room_id: str, limits: WorkerSettings, loader: FrameLoader
) -> SliceInput:
    """Check limits, decode frames, confine paths to the media root, and open every frame.

    The encoder itself would drop an unreadable frame and encode the rest (and a
    text-only encoder never opens frames at all); at the service boundary a
    corrupt upload is refused with its reason instead, so the sender learns of it.
    """
    text_chars = sum(len(x) for x in (message.title, message.ocr, message.asr, message.author))
    text_chars += sum(len(x) for x in message.comments) + sum(len(x) for x in message.tags)
    if text_chars > limits.max_text_chars:
        raise BadSliceError(
            f"text too long: {text_chars} characters, at most {limits.max_text_chars}"
        )
    if len(message.frames) > limits.max_frames:
        raise BadSliceError(f"too many frames: {len(message.frames)}, at most {limits.max_frames}")
    root = Path(limits.media_root).resolve()
    frames: list[bytes | str] = []
    for index, frame in enumerate(message.frames):
        if (frame.data is None) == (frame.path is None):
            raise BadSliceError(f"frame {index}: give exactly one of data (base64) or path")
        if frame.data is not None:
            if len(frame.data) > limits.max_frame_bytes * 4 // 3 + 4:
                raise BadSliceError(f"frame {index}: larger than {limits.max_frame_bytes} bytes")
            try:
                frames.append(base64.b64decode(frame.data, validate=True))
            except (binascii.Error, ValueError):
                raise BadSliceError(f"frame {index}: data is not valid base64") from None
        else:
            path = (root / frame.path).resolve()  # type: ignore[operator]
            if not path.is_relative_to(root):
                raise BadSliceError(f"frame {index}: path escapes the media root")
            frames.append(str(path))
        try:
            loader.open(frames[-1])
        except (BadFrameError, SliceInputError) as exc:
            raise BadSliceError(f"frame {index}: {exc}") from None
    return SliceInput(
        slice_id=message.slice_id,
        room_id=room_id,
        ts=message.ts,
        title=message.title,
        ocr=message.ocr,
        asr=message.asr,
        author=message.author,
        comments=message.comments,
        tags=message.tags,
        frames=frames,
    )


# Labels an event may carry; the ranker trains on those it knows (ranker.LABELS).
EVENT_LABELS = ("click", "watch_s", "like", "follow", "comment", "gift")


class EventMessage(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """One impression or feedback event; an impression without labels is a negative."""

    event_id: CatalogId
    ts: float
    user_id: str
    room_id: CatalogId
    slice_id: str | None = None
    request_id: str | None = None
    variant: str | None = None
    position: int | None = None
    context: dict[str, int] = msgspec.field(default_factory=dict)
    labels: dict[str, float] = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.labels) - set(EVENT_LABELS))
        if unknown:
            raise ValueError(f"unknown label(s) {unknown}; labels are {', '.join(EVENT_LABELS)}")
