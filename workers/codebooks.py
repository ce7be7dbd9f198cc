"""Retrain the quantizer on the catalog's embeddings and switch every code to the new version.

Steps: stream the stored embeddings into temporary ``.npy`` shards; fit (warm
from the parent when given) and write the codebook folder under the model
store; register it; code every slice and every room under the new version
*beside* the old codes; then flip the active version in one transaction.
Readers see the old codes until the flip and the new ones after it, never a
mix. Slices stored during the re-code are coded right after the flip (and by
maintenance, should this process stop first).

One fit at a time: every fit holds the catalog's ``codebook`` lease (renewed
while it runs, lapsing ``CODEBOOK_LEASE_S`` after a holder that died). A retrain
asked for by hand waits for a fit in progress; the first codebook's automatic fit
(:func:`fit_first_codebook`, run by maintenance) skips instead, and fits only
while no codebook is active, checked under the lease, so two workers never fit
concurrently and it happens once.
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np
from sqlalchemy.exc import IntegrityError
from tqdm.auto import tqdm

from configs import Settings
from quantizer import Codebook, QuantizerError, retrain
from workers.catalog import Catalog

logger = logging.getLogger(__name__)

LEASE = "codebook"
# a fit renews its lease every third of this; a holder that died frees it after this long
CODEBOOK_LEASE_S = 60.0


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


def first_codebook_slices(settings: Settings) -> int:
    """Encoded slices the first codebook waits for: ``workers.bootstrap_min_slices``, or
    ``quantizer.codes`` (the fewest vectors a fit accepts) when unset."""
    return settings.workers.bootstrap_min_slices or settings.quantizer.codes


class CodebookLease:
    """The catalog's ``codebook`` lease, renewed from a background thread while held."""

    def __init__(self, catalog: Catalog, ttl_s: float = CODEBOOK_LEASE_S) -> None:
        self.catalog, self.ttl_s = catalog, ttl_s
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"  # this fit
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def try_acquire(self) -> str | None:
        """Take the lease if it is free (and start renewing it); None if taken, else the
        holder that has it."""
        try:
            acquired, holder = self.catalog.acquire_lease(LEASE, self.owner, self.ttl_s)
        except IntegrityError:  # PostgreSQL: another process inserted the lease row first
            return "another process"
        if not acquired:
            return holder
        self._renewer = threading.Thread(target=self._renew, name="codebook-lease", daemon=True)
        self._renewer.start()
        return None

    def wait(self) -> None:
        """Take the lease, waiting (and saying so) while another fit holds it."""
        said = 0.0
        while (holder := self.try_acquire()) is not None:
            if time.monotonic() - said > 30:
                logger.warning("waiting for the codebook fit that %s is running", holder)
                said = time.monotonic()
            time.sleep(min(self.ttl_s / 10, 2.0))

    def _renew(self) -> None:
        while not self._stop.wait(self.ttl_s / 3):
            try:
                self.catalog.acquire_lease(LEASE, self.owner, self.ttl_s)
            except Exception:  # the catalog away for a moment: try again next round
                logger.warning("could not renew the codebook lease", exc_info=True)

    def release(self) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
            self.catalog.release_lease(LEASE, self.owner)


def _fit_and_activate(
    catalog: Catalog, settings: Settings, parent: str | None, progress: bool
) -> Codebook:
    """Fit on every stored embedding, re-code the catalog, activate; the lease is held."""
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


def retrain_from_catalog(
    settings: Settings, parent: str | None = None, *, progress: bool = True
) -> Codebook:
    """Fit a codebook on every stored embedding, re-code the catalog, activate it.

    ``settings`` cannot hold a quantizer shape other than ``ranker.lucid``'s (its load
    refuses one), so the codebook activated here is one the served ranker can read.
    A fit already running elsewhere (the first codebook's, say) is waited for.
    """
    catalog = Catalog(settings.catalog.url)
    lease = CodebookLease(catalog)
    try:
        lease.wait()
        return _fit_and_activate(catalog, settings, parent, progress)
    finally:
        lease.release()
        catalog.close()


def fit_first_codebook(
    settings: Settings, catalog: Catalog, *, wait: bool = False
) -> Codebook | None:
    """Fit and activate the first codebook if none is active yet and at least
    :func:`first_codebook_slices` slices are encoded; None when there was nothing to do (a
    codebook active, too few slices, or, unless ``wait``, another process fitting now).

    ``wait``: wait for a fit in progress elsewhere (and fit only if it left no codebook)."""
    if catalog.active_codebook() is not None:
        return None
    if catalog.count_slices("encoded") < first_codebook_slices(settings):
        return None
    lease = CodebookLease(catalog)
    if wait:
        lease.wait()
    elif (holder := lease.try_acquire()) is not None:
        logger.info("first codebook: %s is fitting one; not fitting another", holder)
        return None
    try:
        if catalog.active_codebook() is not None:  # fitted while this one took the lease
            return None
        started = time.monotonic()
        book = _fit_and_activate(catalog, settings, None, progress=False)
    finally:
        lease.release()
    logger.info(
        "first codebook %s fitted on %d encoded slices in %.1f s and activated: rooms have "
        "codes now (refit on the grown catalog later: lucidrec quantizer retrain "
        "--from-catalog --parent active)",
        book.version,
        book.n_train,
        time.monotonic() - started,
    )
    return book
