"""Periodic maintenance: end idle rooms, code pending slices, prune the idempotency ledger,
and ask the trainer to tidy up.

Table expiry and snapshots act on the trainer's in-memory model, which lives in
the single ``train`` consumer, so this task sends ``lucidrec.train.maintain``
down the train queue rather than touching the model from another process.
"""

from __future__ import annotations

import time
from typing import Any

from celery import shared_task

from workers.codebooks import code_pending
from workers.tasks.base import LucidrecTask


@shared_task(bind=True, base=LucidrecTask, name="lucidrec.maintenance.run")
def run(self: LucidrecTask) -> dict[str, Any]:
    """One maintenance round; returns what it did."""
    w = self.settings.workers
    ended = self.catalog.end_idle_rooms(time.time(), w.room_idle_s)
    codebook = self.active_codebook()
    coded = code_pending(self.catalog, codebook, w.recode_batch) if codebook else 0
    forgotten = self.catalog.forget_processed(time.time() - w.processed_retention_s)
    self.app.send_task("lucidrec.train.maintain", queue="train")
    return {"ended_rooms": ended, "coded_slices": coded, "forgotten_ids": forgotten}
