"""Periodic maintenance: end idle rooms, fit the first codebook, code pending slices, prune
the idempotency ledger, and ask the trainer to tidy up.

Table expiry and snapshots act on the trainer's in-memory model, which lives in
the single ``train`` consumer, so this task sends ``lucidrec.train.maintain``
down the train queue rather than touching the model from another process.

**The first codebook.** Until one is active no room has codes and ``/v1/rank``
ranks nothing. Once ``workers.bootstrap_min_slices`` slices are encoded (by default
``quantizer.codes``, the fewest a fit accepts) maintenance fits one on the catalog and
activates it, which codes every stored slice and room
(:func:`workers.codebooks.fit_first_codebook`: under the catalog's codebook lease, only
while none is active, so once, by one worker). A fit that fails is logged, kept in the
catalog (``FIRST_CODEBOOK_ERROR``) for ``/ready`` to show, and tried again next round.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded

from workers.catalog import Catalog
from workers.codebooks import code_pending, fit_first_codebook
from workers.tasks.base import TRANSIENT_ERRORS, LucidrecTask

logger = logging.getLogger(__name__)

# catalog state: "<unix time>|<reason>" of the last automatic first fit that failed
FIRST_CODEBOOK_ERROR = "first_codebook_error"


def try_first_codebook(task: LucidrecTask) -> dict[str, Any]:
    """Fit the first codebook if it is due; what happened, for the task's result (empty when
    there was nothing to do)."""
    catalog: Catalog = task.catalog
    try:
        book = fit_first_codebook(task.settings, catalog)
    except (*TRANSIENT_ERRORS, SoftTimeLimitExceeded):
        raise  # the task's retry policy, or its time limit
    except Exception as exc:  # a fit that failed: said, kept for /ready, tried next round
        reason = f"{type(exc).__name__}: {exc}"[:2000]
        logger.exception("the first codebook could not be fitted; maintenance tries again")
        catalog.set_state(FIRST_CODEBOOK_ERROR, f"{time.time():.0f}|{reason}")
        return {"first_codebook_error": reason}
    return {"first_codebook": book.version} if book is not None else {}


def last_first_codebook_error(catalog: Catalog) -> tuple[float, str] | None:
    """When the last automatic first fit failed and why, or None."""
    value = catalog.get_state(FIRST_CODEBOOK_ERROR)
    if not value:
        return None
    at, _, reason = value.partition("|")
    return float(at), reason


@shared_task(bind=True, base=LucidrecTask, name="lucidrec.maintenance.run")
def run(self: LucidrecTask) -> dict[str, Any]:
    """One maintenance round; returns what it did (``first_codebook``: the version it fitted
    and activated, or ``first_codebook_error``, only in the round that tried)."""
    w = self.settings.workers
    ended = self.catalog.end_idle_rooms(time.time(), w.room_idle_s)
    first = try_first_codebook(self)
    codebook = self.active_codebook()
    coded = code_pending(self.catalog, codebook, w.recode_batch) if codebook else 0
    forgotten = self.catalog.forget_processed(time.time() - w.processed_retention_s)
    self.app.send_task("lucidrec.train.maintain", queue="train")
    return {"ended_rooms": ended, "coded_slices": coded, "forgotten_ids": forgotten} | first
