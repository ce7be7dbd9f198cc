"""The embedded beat (``lucidrec worker --beat``) dies with its worker.

Celery runs the embedded beat as a child process of the worker and stops it on
the worker's warm shutdown. A worker killed outright (SIGKILL, the OOM killer)
left it orphaned, still sending ``maintenance`` every interval, and a restarted
worker started a second one beside it. The beat therefore asks the kernel for
SIGTERM when its worker dies (``PR_SET_PDEATHSIG``, Linux: the way Celery's
prefork pool children already get SIGKILL), and stops at once if the worker
died before it could ask. SIGTERM is what the worker's own shutdown sends it.
Elsewhere the call fails and the beat runs as before.
"""

from __future__ import annotations

import contextlib
import os
import signal
from typing import Any

from billiard.util import set_pdeathsig
from celery import signals

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
