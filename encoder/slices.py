"""What goes into the encoder and what comes out per slice, and the JSONL slice format.

A slice in a JSONL file is one JSON object per line::

    {"slice_id": "r1-0003", "room_id": "r1", "ts": 1732265000.0,
     "title": "...", "ocr": "...", "asr": "...", "author": "...",
     "comments": ["...", "..."], "tags": ["cooking", "live"],
     "frames": ["frames/r1-0003-a.jpg", "/abs/path/b.png"], "domain": "live"}

Only ``slice_id`` is required. In a file, frames are paths (relative ones are
taken from the file's folder); from Python they may also be image bytes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

import msgspec
import numpy as np

from encoder.errors import EncoderError

T = TypeVar("T")


class _SliceText(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """The fields a slice has besides its frames (shared by the Python and the file form)."""

    slice_id: str
    room_id: str = ""
    ts: float = 0.0
    title: str = ""
    ocr: str = ""
    asr: str = ""
    author: str = ""
    comments: list[str] = msgspec.field(default_factory=list)
    tags: list[str] = msgspec.field(default_factory=list)
    # Training only: the content domain (e.g. "short_video", "live") batches mix over.
    domain: str | None = None

    def text_fields(self) -> dict[str, str]:
        """Every text field as one string (lists joined), keyed by field name."""
        return {
            "title": self.title,
            "ocr": self.ocr,
            "asr": self.asr,
            "author": self.author,
            "comments": " / ".join(self.comments),
            "tags": ", ".join(self.tags),
        }


class SliceInput(_SliceText, kw_only=True):
    """One slice to encode: its text fields and up to F frames (image bytes or file paths)."""

    frames: list[bytes | str | os.PathLike[str]] = msgspec.field(default_factory=list)


class SliceLine(_SliceText, kw_only=True):
    """A slice as a JSONL line holds it: frames are paths."""

    frames: list[str] = msgspec.field(default_factory=list)

    def to_input(self, base: Path) -> SliceInput:
        """The slice, with relative frame paths taken from ``base`` (the file's folder)."""
        fields = msgspec.structs.asdict(self)
        fields["frames"] = [str(base / frame) for frame in self.frames]
        return SliceInput(**fields)


class EncodedSlice(msgspec.Struct, kw_only=True):
    """The outcome for one slice: an embedding, or the reason it could not be encoded.

    ``dropped_frames`` lists frames that were skipped (corrupt, truncated, too
    large) while the slice still encoded from the rest; ``ignored_frames`` counts
    the frames a text-only encoder (no vision tower) did not look at.
    """

    slice_id: str
    embedding: np.ndarray | None = None
    error: str | None = None
    frames_used: int = 0
    dropped_frames: list[str] = msgspec.field(default_factory=list)
    ignored_frames: int = 0

    @property
    def ok(self) -> bool:
        return self.error is None


def iter_jsonl(path: str | os.PathLike[str], line_type: type[T]) -> Iterator[T]:
    """Decode each non-blank line of ``path`` as ``line_type``; errors name the file and line."""
    path = Path(path)
    if not path.is_file():
        raise EncoderError(f"{path}: no such file; give a JSONL file, one JSON object per line")
    decoder = msgspec.json.Decoder(line_type)
    with path.open("rb") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                yield decoder.decode(line)
            except msgspec.DecodeError as exc:
                raise EncoderError(f"{path}:{number}: {exc}") from None


def read_slices(path: str | os.PathLike[str]) -> list[SliceInput]:
    """All slices of a JSONL file, frame paths resolved against the file's folder.

    Every frame path must name a file, whichever towers encode the slices: a typo in a
    path is the file's fault, and a text-only encoder that never opens frames would
    otherwise hide it until the file meets a multimodal one.
    """
    base = Path(path).resolve().parent
    slices = [line.to_input(base) for line in iter_jsonl(path, SliceLine)]
    for item in slices:
        for frame in item.frames:
            if not Path(frame).is_file():
                raise EncoderError(
                    f"{path}: slice {item.slice_id!r}: frame {str(frame)!r} is not a file; "
                    "fix the path (a relative one is taken from the file's folder)"
                )
    if not slices:
        raise EncoderError(f"{path}: holds no slices")
    return slices
