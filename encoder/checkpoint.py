"""The encoder folder that ``save_pretrained`` writes and ``from_pretrained`` reads.

Layout::

    encoder.json          format, the EncoderSettings that rebuild the model (tower
                          paths as written below), the text model's kind and pooling
    heads.safetensors     projector.* and head.* (the fusion's own weights)
    text/                 the text tower (model + tokenizer), when embedded
    vision/               the vision tower (SigLIP folder, or open_clip_visual.safetensors)

A tower that training changed is always embedded. An untouched tower is
referenced by its absolute path (or ``null`` for the packaged MiniLM), which
keeps folders small; ``embed_towers=True`` embeds both so that the folder is
self-contained and can move to another machine. The folder is written under a
temporary name and renamed into place; an existing folder is never overwritten.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import msgspec
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from configs.encoder import EncoderSettings
from encoder.errors import CheckpointError
from encoder.meta import FORMAT, META_FILE, read_settings
from encoder.modeling import SliceEncoderModel

__all__ = ["FORMAT", "META_FILE", "load_heads", "read_settings", "save_folder"]

HEADS_FILE = "heads.safetensors"
HEAD_PREFIXES = ("projector.", "head.")


def save_folder(
    model: SliceEncoderModel,
    settings: EncoderSettings,
    path: Path,
    *,
    embed_text: bool,
    embed_vision: bool,
) -> None:
    """Write ``model`` to the new folder ``path`` (see the module docstring)."""
    if path.exists():
        raise CheckpointError(f"{path} already exists; save an encoder to a new folder")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}-", dir=path.parent))
    try:
        text_path = settings.text.path and str(Path(settings.text.path).resolve())
        vision_path = settings.vision.path and str(Path(settings.vision.path).resolve())
        if embed_text:
            model.text.save(str(tmp / "text"))
            text_path = "text"
        if embed_vision and model.vision is not None:
            (tmp / "vision").mkdir()
            model.vision.save(str(tmp / "vision"))
            vision_path = (
                "vision"
                if settings.vision.backend == "siglip"
                else ("vision/open_clip_visual.safetensors")
            )
        tree = msgspec.to_builtins(settings)
        tree["checkpoint"] = None
        tree["text"] |= {"path": text_path, "max_length": model.text.max_length}
        tree["vision"]["path"] = vision_path
        heads = {
            k: v.detach().contiguous().cpu()
            for k, v in model.state_dict().items()
            if k.startswith(HEAD_PREFIXES)
        }
        save_file(heads, str(tmp / HEADS_FILE))
        meta = {
            "format": FORMAT,
            "settings": tree,
            "text_kind": model.text.kind,
            "pooling": model.text.pooling,
        }
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        tmp.rename(path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def load_heads(model: SliceEncoderModel, path: Path) -> None:
    """Load the projector and head weights saved in ``path`` into ``model``."""
    try:
        heads = load_file(str(path / HEADS_FILE))
    except (OSError, SafetensorError) as exc:
        raise CheckpointError(f"{path / HEADS_FILE}: cannot read ({exc})") from None
    expected = {k for k in model.state_dict() if k.startswith(HEAD_PREFIXES)}
    if set(heads) != expected:
        raise CheckpointError(
            f"{path}: saved heads {sorted(heads)} do not fit the model {sorted(expected)}"
        )
    try:
        model.load_state_dict(heads, strict=False)
    except RuntimeError as exc:  # same names, other shapes: the towers differ
        raise CheckpointError(f"{path}: saved heads do not fit the towers ({exc})") from None
