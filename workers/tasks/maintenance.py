"""Periodic maintenance: end idle rooms, code pending slices, and ask the trainer to tidy up.

Table expiry and snapshots act on the trainer's in-memory model, which lives in
the single ``train`` consumer, so this task sends ``lucidrec.train.maintain``
down the train queue rather than touching the model from another process.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from celery import shared_task

from workers.tasks.base import LucidrecTask


@shared_task(bind=True, base=LucidrecTask, name="lucidrec.maintenance.run")
def run(self: LucidrecTask) -> dict[str, Any]:
    """One maintenance round; returns what it did."""
    w = self.settings.workers
    ended = self.catalog.end_idle_rooms(time.time(), w.room_idle_s)
    coded = recode_pending(self, w.recode_batch)
    self.app.send_task("lucidrec.train.maintain", queue="train")
    return {"ended_rooms": ended, "coded_slices": coded}


def recode_pending(task: LucidrecTask, batch: int) -> int:
    """Code slices stored while no codebook was active (or during a retrain)."""
    codebook = task.active_codebook()
    if codebook is None:
        return 0
    total = 0
    while pending := task.catalog.uncoded_slices(codebook.version, limit=batch):
        ids = [slice_id for slice_id, _ in pending]
        codes = codebook.encode(np.stack([vec for _, vec in pending]))
        total += task.catalog.store_codes(
            codebook.version, list(zip(ids, map(tuple, codes.tolist()), strict=True))
        )
        if len(pending) < batch:
            break
    return total
