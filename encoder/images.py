"""Frame decoding with guards: a bad frame is dropped and counted, never the batch.

Two kinds of trouble, kept apart on purpose:

- the caller's fault (a frame path that does not exist or cannot be read, a
  frame that is neither bytes nor a path): :class:`SliceInputError`, which the
  encoder reports for that slice only;
- a bad image (corrupt, truncated, not an image, too many pixels or bytes): the
  frame is dropped, logged and counted in :class:`FrameStats`, and the slice
  encodes from the frames that remain.

Pixels are checked from the header, before decoding, so a decompression bomb
never allocates its pixels.
"""

from __future__ import annotations

import io
import logging
import os
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from PIL import Image, UnidentifiedImageError

from encoder.errors import SliceInputError

logger = logging.getLogger(__name__)

# Formats a frame may have; anything else is refused before a decoder plug-in runs.
FRAME_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP")


class BadFrameError(Exception):
    """An image that cannot be used; ``reason`` is one word for the counters."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


@dataclass
class FrameStats:
    """Frames seen, used and dropped (by reason) since the encoder was built, and those
    ignored because the encoder has no vision tower (so callers can say so); thread-safe."""

    seen: int = 0
    used: int = 0
    ignored: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def record(self, used: int, dropped: list[str]) -> None:
        with self._lock:
            self.seen += used + len(dropped)
            self.used += used
            self.dropped.update(reason.split(":", 1)[0] for reason in dropped)

    def ignore(self, frames: int) -> None:
        with self._lock:
            self.ignored += frames

    def as_dict(self) -> dict[str, object]:
        with self._lock:
            return {
                "seen": self.seen,
                "used": self.used,
                "dropped": dict(self.dropped),
                "ignored": self.ignored,
            }


@dataclass(frozen=True)
class FrameLoader:
    """Opens frames (bytes or paths) as RGB images within the configured limits."""

    max_pixels: int
    max_bytes: int

    def open(self, frame: object) -> Image.Image:
        """The decoded RGB image, :class:`BadFrameError` if unusable, :class:`SliceInputError`
        if the frame itself is wrong (missing path, wrong type)."""
        if isinstance(frame, bytes | bytearray | memoryview):
            data = bytes(frame)
            if len(data) > self.max_bytes:
                raise BadFrameError("oversized", f"{len(data):,} bytes > {self.max_bytes:,}")
            return self._decode(io.BytesIO(data))
        if isinstance(frame, str | os.PathLike):
            path = Path(frame)
            try:
                size = path.stat().st_size
                if not path.is_file():
                    raise SliceInputError(f"frame {str(path)!r} is not a file")
                if size > self.max_bytes:
                    raise BadFrameError("oversized", f"{path}: {size:,} bytes > {self.max_bytes:,}")
                with path.open("rb") as fh:
                    return self._decode(fh)
            except FileNotFoundError:
                raise SliceInputError(f"frame {str(path)!r} does not exist") from None
            except PermissionError:
                raise SliceInputError(f"frame {str(path)!r} cannot be read") from None
        raise SliceInputError(
            f"a frame must be image bytes or a file path, got {type(frame).__name__}"
        )

    def _decode(self, fh: IO[bytes]) -> Image.Image:
        try:
            with Image.open(fh, formats=FRAME_FORMATS) as image:
                width, height = image.size
                if width * height > self.max_pixels:
                    raise BadFrameError(
                        "oversized", f"{width}x{height} pixels > {self.max_pixels:,} allowed"
                    )
                image.load()
                return image.convert("RGB")
        except UnidentifiedImageError as exc:
            raise BadFrameError("corrupt", f"not an image in {', '.join(FRAME_FORMATS)}") from exc
        except Image.DecompressionBombError as exc:
            raise BadFrameError("oversized", str(exc)) from exc
        except (OSError, SyntaxError, ValueError) as exc:
            # PIL raises OSError for truncated data, SyntaxError/ValueError for broken headers.
            raise BadFrameError("corrupt", str(exc) or type(exc).__name__) from exc

    def open_all(self, frames: list[object], slice_id: str) -> tuple[list[Image.Image], list[str]]:
        """The usable images of one slice and a reason per dropped frame (logged)."""
        images: list[Image.Image] = []
        dropped: list[str] = []
        for index, frame in enumerate(frames):
            try:
                images.append(self.open(frame))
            except BadFrameError as exc:
                dropped.append(str(exc))
                logger.warning("slice %s: frame %d dropped (%s)", slice_id, index, exc)
        return images, dropped


def sample_evenly(frames: list[object], limit: int) -> list[object]:
    """At most ``limit`` frames spread over the whole slice (first and last kept)."""
    if len(frames) <= limit:
        return list(frames)
    if limit == 1:
        return [frames[0]]
    step = (len(frames) - 1) / (limit - 1)
    return [frames[round(i * step)] for i in range(limit)]
