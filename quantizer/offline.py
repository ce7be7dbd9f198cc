"""Offline jobs over embedding files: ``retrain`` and ``encode_file``.

Both find everything that can be wrong with the input before their output
appears, and their output appears whole (a folder renamed into place, a file
replaced atomically), so a bad run writes nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from configs.settings import QuantizerSettings
from quantizer.codebook import Codebook
from quantizer.embeddings import EmbeddingSource
from quantizer.errors import QuantizerError
from quantizer.report import quality_report
from quantizer.rq_kmeans import RQKMeans


def _new_output(out: str | os.PathLike[str]) -> Path:
    """``out`` as a path that does not exist yet: outputs are never overwritten."""
    out = Path(out)
    if out.exists():
        raise QuantizerError(f"{out} already exists; remove it or choose another --out")
    return out


def _source(embeddings: str | os.PathLike[str] | EmbeddingSource) -> EmbeddingSource:
    return (
        embeddings if isinstance(embeddings, EmbeddingSource) else EmbeddingSource.open(embeddings)
    )


def retrain(
    embeddings: str | os.PathLike[str] | EmbeddingSource,
    out: str | os.PathLike[str],
    settings: QuantizerSettings,
    parent: str | os.PathLike[str] | Codebook | None = None,
    *,
    progress: bool = True,
) -> Codebook:
    """Fit a codebook on ``embeddings``, write it to ``out`` (a new folder) and return it."""
    out, source = _new_output(out), _source(embeddings)
    source.validate(settings.batch_size)
    parent_book = Codebook.load(parent) if isinstance(parent, (str, os.PathLike)) else parent
    model = RQKMeans.from_settings(settings, progress=progress)
    codebook = model.fit(source, parent=parent_book)
    report = quality_report(
        codebook,
        source,
        parent_book,
        batch_size=settings.batch_size,
        beam_width=settings.beam_width,
        progress=progress,
    )
    codebook = codebook.with_report(report)
    codebook.save(out)
    return codebook


def encode_file(
    codebook: Codebook,
    embeddings: str | os.PathLike[str] | EmbeddingSource,
    out: str | os.PathLike[str],
    *,
    batch_size: int = 1 << 16,
    beam_width: int = 1,
    progress: bool = True,
) -> int:
    """Stream the codes of ``embeddings`` into a new ``.npy`` file (int32, (n, L)); return n."""
    out, source = _new_output(out), _source(embeddings)
    if source.dim != codebook.dim:
        raise QuantizerError(f"vectors have dim {source.dim}, the codebook expects {codebook.dim}")
    tmp = out.with_name(f".{out.name}.partial")
    codes = np.lib.format.open_memmap(
        tmp, mode="w+", dtype=np.int32, shape=(len(source), codebook.levels)
    )
    try:
        row = 0
        with tqdm(total=len(source), desc="encode", unit="vec", disable=not progress) as bar:
            for block in codebook.encode_batches(source.batches(batch_size), beam_width):
                codes[row : row + len(block)] = block
                row += len(block)
                bar.update(len(block))
        codes.flush()
        del codes
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return row
