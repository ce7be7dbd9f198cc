"""The base every lucidrec task shares: per-process resources, retry policy, delivery policy.

Resources (the catalog, the encoder, the active codebook, the trainers) load
once per worker process, on first use, and live as long as the process. Only
transient errors are retried, with exponential backoff: the catalog
unavailable for now (connection lost, serialization failure, deadlock, a
timeout: :mod:`workers.catalog.errors` tells them from the rest) or the broker
unreachable. Bad input, a PostgreSQL ``DataError`` included, fails at once with
its reason stored.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from celery import Task

from configs import Settings
from quantizer import Codebook
from workers.catalog import Catalog, CatalogUnavailableError

TRANSIENT_ERRORS = (CatalogUnavailableError, ConnectionError, TimeoutError)


class LucidrecTask(Task):
    """Shared base: at-least-once delivery (tasks are idempotent), retries for transient errors."""

    abstract = True
    acks_late = True
    reject_on_worker_lost = True
    autoretry_for = TRANSIENT_ERRORS
    retry_backoff = True
    retry_jitter = True

    @property
    def settings(self) -> Settings:
        return self.app.settings  # type: ignore[attr-defined,no-any-return]

    @property
    def max_retries(self) -> int:  # type: ignore[override]
        return self.settings.workers.max_retries

    @property
    def retry_backoff_max(self) -> int:  # type: ignore[override]
        return self.settings.workers.retry_backoff_max_s

    @cached_property
    def catalog(self) -> Catalog:
        return Catalog(self.settings.catalog.url)

    def active_codebook(self) -> Codebook | None:
        """The active codebook, loaded again only when the active version changes."""
        record = self.catalog.active_codebook()
        if record is None:
            return None
        cached: Codebook | None = getattr(self, "_codebook", None)
        if cached is None or cached.version != record.version:
            cached = Codebook.load(Path(record.path))
            self._codebook = cached
        return cached
