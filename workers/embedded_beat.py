"""The embedded beat (``lucidrec worker --beat``) dies with its worker.

Celery runs the embedded beat as a child process of the worker and stops it on
the worker's warm shutdown. A worker killed outright (SIGKILL, the OOM killer)
left it orphaned, still sending ``maintenance`` every interval, and a restarted
worker started a second one beside it. The beat therefore asks the kernel for
SIGTERM when its worker dies (``PR_SET_PDEATHSIG``, Linux: the way Celery's
prefork pool children already get SIGKILL), and stops at once if the worker
died before it could ask. SIGTERM is what the worker's own shutdown sends it.
Elsewhere the call fails and the beat runs as before.

The beat also keeps one producer, on one broker channel, for its whole life.
When a send fails on a connection error, kombu re-establishes the connection
and revives what it retries, but a failure while declaring the task's queue
revives only the queue: the producer is left on the channel that kombu closed,
and every later send fails with ``channel disconnected``, so maintenance stops
for good. :class:`Scheduler` (the app's ``beat_scheduler``) therefore drops its
connection and producer after any failed send, and before a send whose producer's
channel was closed; the next send opens new ones.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from typing import Any

from billiard.util import set_pdeathsig
from celery import signals
from celery.beat import PersistentScheduler

logger = logging.getLogger(__name__)

_worker_pid: int | None = None


@signals.worker_init.connect
def _remember_worker(**_: Any) -> None:
    """In the worker's main process, before the beat is forked from it."""
    global _worker_pid
    _worker_pid = os.getpid()


@signals.beat_embedded_init.connect
def _die_with_worker(**_: Any) -> None:
    """In the beat process, first thing."""
    with contextlib.suppress(OSError):  # not Linux
        set_pdeathsig(signal.SIGTERM)
        if _worker_pid is not None and os.getppid() != _worker_pid:
            os.kill(os.getpid(), signal.SIGTERM)  # the worker is already gone


class Scheduler(PersistentScheduler):
    """Celery's persistent scheduler, sending on a new connection after a failed send."""

    def apply_async(self, entry: Any, producer: Any = None, advance: bool = True, **kwargs: Any):
        try:
            ours = producer is not None and producer is self.__dict__.get("producer")
            if ours and producer.channel.connection is None:  # closed by a send that succeeded
                self._drop_connection()
                producer = self.producer
            return super().apply_async(entry, producer=producer, advance=advance, **kwargs)
        except Exception:  # SchedulingError, or the broker unreachable
            self._drop_connection()
            raise

    def _drop_connection(self) -> None:
        """Forget the producer and release its connection; both are made again when next used."""
        self.__dict__.pop("producer", None)  # cached properties of celery's Scheduler
        connection = self.__dict__.pop("connection", None)
        logger.warning("beat: renewing its broker connection after an error")
        if connection is not None:
            with contextlib.suppress(Exception):  # it failed already; releasing is best effort
                connection.release()
