"""Retrain the quantizer on the catalog's embeddings and switch every code to the new version.

Steps: stream the stored embeddings into temporary ``.npy`` shards; fit (warm
from the parent when given) and write the codebook folder under the model
store; register it; code every slice and every room under the new version
*beside* the old codes; then flip the active version in one transaction.
Readers see the old codes until the flip and the new ones after it, never a
mix. Slices stored during the re-code are coded right after the flip (and by
maintenance, should this process stop first).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from configs import Settings
from quantizer import Codebook, QuantizerError, retrain
from workers.catalog import Catalog


def codebook_root(settings: Settings) -> Path:
    return Path(settings.model_store) / "codebooks"


def resolve_parent(catalog: Catalog, parent: str | None) -> Codebook | None:
    """``"active"`` -> the active codebook; a path -> that folder; None -> a cold fit."""
    if parent is None:
        return None
    if parent == "active":
        record = catalog.active_codebook()
        if record is None:
            raise QuantizerError(
                "--parent active: the catalog has no active codebook yet; "
                "run the first retrain without --parent"
            )
        return Codebook.load(record.path)
    return Codebook.load(parent)


def code_all_slices(
    catalog: Catalog, book: Codebook, *, batch: int = 10_000, progress: bool = True
) -> int:
    """Store the codes of every encoded slice under ``book.version``; then its rooms' codes."""
    total = catalog.count_slices("encoded")
    coded = 0
    with tqdm(total=total, desc="re-code", unit="slice", disable=not progress) as bar:
        for ids, vectors in catalog.iter_embeddings(batch):
            codes = book.encode(vectors)
            coded += catalog.store_codes(
                book.version, list(zip(ids, map(tuple, codes.tolist()), strict=True)), rooms=False
            )
            bar.update(len(ids))
    catalog.refresh_room_codes(book.version)
    return coded


def code_pending(catalog: Catalog, book: Codebook, batch: int = 5000) -> int:
    """Code the slices that have no code under ``book.version`` yet (stored while none was
    active, or during a re-code); returns how many were coded."""
    total = 0
    while pending := catalog.uncoded_slices(book.version, limit=batch):
        codes = book.encode(np.stack([vec for _, vec in pending]))
        ids = [slice_id for slice_id, _ in pending]
        total += catalog.store_codes(
            book.version, list(zip(ids, map(tuple, codes.tolist()), strict=True))
        )
        if len(pending) < batch:
            break
    return total


def check_readable(levels: int, codes: int, settings: Settings) -> None:
    """Refuse a codebook of ``levels`` x ``codes`` that the ranker (``ranker.lucid``) cannot
    read: a retrain's command-line shape, before it reaches the settings."""
    lucid = settings.ranker.lucid
    if (levels, codes) != (lucid.levels, lucid.codes):
        raise QuantizerError(
            f"a codebook of L={levels} x N={codes} cannot be activated: the ranker reads "
            f"ranker.lucid.levels={lucid.levels} x ranker.lucid.codes={lucid.codes}; change "
            "quantizer.levels/codes and ranker.lucid.levels/codes together (a new ranker)"
        )


def retrain_from_catalog(
    settings: Settings, parent: str | None = None, *, progress: bool = True
) -> Codebook:
    """Fit a codebook on every stored embedding, re-code the catalog, activate it.

    ``settings`` cannot hold a quantizer shape other than ``ranker.lucid``'s (its load
    refuses one), so the codebook activated here is one the served ranker can read.
    """
    catalog = Catalog(settings.catalog.url)
    try:
        parent_book = resolve_parent(catalog, parent)
        root = codebook_root(settings)
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=root, prefix=".retrain-") as tmp:
            shards = Path(tmp) / "embeddings"
            shards.mkdir()
            for number, (_, vectors) in enumerate(catalog.iter_embeddings(50_000)):
                np.save(shards / f"{number:06d}.npy", vectors.astype(np.float32))
            if not any(shards.iterdir()):
                raise QuantizerError("the catalog holds no encoded slices to fit a codebook on")
            staged = Path(tmp) / "codebook"
            book = retrain(shards, staged, settings.quantizer, parent_book, progress=progress)
            final = root / book.version
            os.rename(staged, final)
        catalog.register_codebook(
            book.version,
            str(final),
            levels=book.levels,
            codes=book.codes,
            dim=book.dim,
            parent_version=book.parent_version,
        )
        code_all_slices(catalog, book, progress=progress)
        catalog.activate(book.version)
        code_pending(catalog, book)  # slices stored during the re-code
        return book
    finally:
        catalog.close()
