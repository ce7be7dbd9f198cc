"""Start a Celery worker for some of lucidrec's queues, enforcing the single-trainer rule.

The ``train`` queue has exactly one consumer: the trainer keeps the model in
memory. A worker that consumes ``train`` therefore runs the solo pool (one
process, concurrency 1) and holds the ``trainer`` lease in the catalog for as
long as it lives, renewing it from a background thread. A second train worker
waits as a standby, consuming nothing, until the lease is free; a holder that
dies (even by SIGKILL) lets its lease lapse after ``workers.trainer_lease_s``,
and the standby takes over, resuming from the newest snapshot. A holder that
stops cleanly gives the lease up once its worker has shut down (after the
shutdown snapshot), so a standby or the next trainer starts at once. A trainer
that has the lease first wakes itself up: it trains what the log holds.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time

from configs import Settings
from workers.catalog import Catalog
from workers.celery_app import QUEUES, create_celery
from workers.metrics import serve_worker_metrics

logger = logging.getLogger(__name__)


class WorkerConfigError(ValueError):
    """The requested worker cannot run as asked (bad queue name, trainer rule, lease held)."""


def parse_queues(text: str) -> list[str]:
    queues = [q.strip() for q in text.split(",") if q.strip()]
    unknown = sorted(set(queues) - set(QUEUES))
    if not queues or unknown:
        named = ", ".join(unknown) or "(none given)"
        raise WorkerConfigError(f"unknown queue(s) {named}; choose from {', '.join(QUEUES)}")
    return queues


class TrainerLease:
    """The trainer lease, held and renewed from a background thread until released."""

    def __init__(self, catalog: Catalog, owner: str, ttl_s: float) -> None:
        self.catalog, self.owner, self.ttl_s = catalog, owner, ttl_s
        self._stop = threading.Event()
        self._renewer = threading.Thread(target=self._renew, name="trainer-lease", daemon=True)

    def hold(self) -> TrainerLease:
        """Wait for the lease, then keep renewing it."""
        while True:
            acquired, holder = self.catalog.acquire_lease("trainer", self.owner, self.ttl_s)
            if acquired:
                break
            logger.warning(
                "standing by: %s holds the trainer lease; the train queue has exactly one consumer",
                holder,
            )
            time.sleep(max(self.ttl_s / 3, 0.2))
        self._renewer.start()
        return self

    def _renew(self) -> None:
        while not self._stop.wait(self.ttl_s / 3):
            self.catalog.acquire_lease("trainer", self.owner, self.ttl_s)

    def release(self) -> None:
        """Stop renewing and give the lease up, before this process exits."""
        self._stop.set()
        self._renewer.join()
        self.catalog.release_lease("trainer", self.owner)


def run_worker(
    settings: Settings,
    queues: list[str],
    concurrency: int | None = None,
    *,
    beat: bool = False,
    loglevel: str = "INFO",
) -> None:
    """Run a worker in this process until it is stopped."""
    trains = "train" in queues
    if trains and concurrency not in (None, 1):
        raise WorkerConfigError(
            "the train queue takes exactly one process with concurrency 1: run train in its "
            "own worker (--queues train) and give --concurrency to the encode workers"
        )
    app = create_celery(settings)
    owner = f"{socket.gethostname()}:{os.getpid()}"
    lease = None
    if trains:
        ttl_s = settings.workers.trainer_lease_s
        lease = TrainerLease(Catalog(settings.catalog.url), owner, ttl_s).hold()
        app.send_task("lucidrec.train.events", queue="train")  # train what the log holds
    # the trainer (solo) serves its own metrics; an encode pool its children's files
    serve_worker_metrics(settings.workers.metrics_port, prefork=not trains)
    argv = [
        "worker",
        f"--queues={','.join(queues)}",
        f"--loglevel={loglevel}",
        f"--hostname={'-'.join(queues)}.{owner.replace(':', '.')}@%h",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]
    if trains:
        argv.append("--pool=solo")
    else:
        argv.append(f"--concurrency={concurrency or settings.workers.concurrency}")
    if beat:
        schedule = os.path.join(settings.data_dir, "celerybeat-schedule")
        os.makedirs(settings.data_dir, exist_ok=True)
        argv += ["--beat", f"--schedule={schedule}"]
    try:
        app.worker_main(argv=argv)
    finally:
        if lease is not None:
            lease.release()
