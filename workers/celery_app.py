"""Build the Celery app from settings: JSON only, three routed queues, at-least-once delivery.

The app only wires configuration; tasks live in ``workers.tasks`` on a shared
base class. ``acks_late`` + ``reject_on_worker_lost`` mean a task is acknowledged
after it ran, and a worker killed mid-task gets its message redelivered: every
task is idempotent (by slice id, by event id) so a redelivery stores nothing twice.
A worker's consumer also beats a heartbeat into the catalog, what ``/ready``
reads (:mod:`workers.heartbeats`), and an embedded beat dies with its worker
and sends on a new broker connection after a failed send (:mod:`workers.embedded_beat`).
"""

from __future__ import annotations

from celery import Celery
from kombu import Exchange, Queue

import workers.embedded_beat  # noqa: F401  (connects its signal handlers)
from configs import Settings
from workers.broker import broker_options, ensure_sqlite_folder
from workers.heartbeats import HeartbeatStep

QUEUES = ("encode", "train", "maintenance")
TASK_MODULES = ("workers.tasks.encode", "workers.tasks.train", "workers.tasks.maintenance")


def create_celery(settings: Settings) -> Celery:
    """A Celery app for ``settings``; ``app.settings`` holds them for the tasks."""
    w = settings.workers
    for url in (w.broker_url, w.result_backend):
        ensure_sqlite_folder(url)
    app = Celery("lucidrec", include=list(TASK_MODULES))
    app.conf.update(
        **broker_options(w.broker_url, w.poll_interval_s, w.redelivery_timeout_s),
        result_backend=w.result_backend,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        # each queue on its own direct exchange and routing key: a bare Queue(name) is
        # bound to the default queue's exchange and key, which the banner showed as
        # every queue on "exchange=encode key=encode" (messages are sent to the queue
        # by name either way)
        task_queues=[
            Queue(name, Exchange(name, type="direct"), routing_key=name) for name in QUEUES
        ],
        task_default_queue="encode",
        task_routes={f"lucidrec.{name}.*": {"queue": name} for name in QUEUES},
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        worker_prefetch_multiplier=1,
        task_soft_time_limit=w.task_soft_time_limit_s,
        task_time_limit=w.task_time_limit_s,
        task_track_started=True,
        result_extended=True,
        result_expires=7 * 24 * 3600,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        beat_scheduler="workers.embedded_beat:Scheduler",  # reconnects after a failed send
        beat_schedule={
            "maintenance": {
                "task": "lucidrec.maintenance.run",
                "schedule": float(w.maintenance_interval_s),
            }
        },
    )
    app.steps["consumer"].add(HeartbeatStep)
    app.settings = settings  # type: ignore[attr-defined]
    return app
