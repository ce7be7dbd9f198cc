"""An encoder folder's ``encoder.json``, read without torch: the settings that rebuild the
model (what :func:`encoder.checkpoint.read_settings` returns, and what the API shows of a
checkpoint's towers without loading them)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec

from configs.encoder import EncoderSettings
from encoder.errors import CheckpointError

FORMAT = 1
META_FILE = "encoder.json"


def read_settings(path: Path) -> EncoderSettings:
    """The settings a folder was saved with, tower paths made absolute against the folder."""
    meta_file = path / META_FILE
    if not meta_file.is_file():
        raise CheckpointError(
            f"{path} is not an encoder folder (no {META_FILE}); give a folder that "
            "SliceEncoder.save_pretrained or `lucidrec encoder train` wrote"
        )
    try:
        meta: dict[str, Any] = json.loads(meta_file.read_text(encoding="utf-8"))
        if meta.get("format") != FORMAT:
            raise CheckpointError(f"{meta_file}: unsupported format {meta.get('format')!r}")
        tree = meta["settings"]
        for section in ("text", "vision"):
            if tree[section]["path"] is not None:
                tree[section]["path"] = str(path / tree[section]["path"])
        return msgspec.convert(tree, EncoderSettings)
    except (KeyError, TypeError, json.JSONDecodeError, msgspec.ValidationError) as exc:
        raise CheckpointError(f"{meta_file}: damaged encoder metadata ({exc})") from None
