"""``serve``'s embedded worker: kept running, restarted with backoff, stopped with ``serve``.

Without this a worker child that died (SIGKILL, the OOM killer) stayed a zombie
until ``serve`` exited, and nothing consumed the queues. A supervisor thread
waits on the child, which reaps it at once, and starts another. The thread is
needed because with one API process uvicorn holds ``serve``'s main thread.

Backoff: a worker that dies right after starting (bad settings, a broken
install) would otherwise restart in a tight loop. The delay before a restart
doubles from ``MIN_BACKOFF_S`` to ``MAX_BACKOFF_S`` with each death that comes
within ``STABLE_S`` of its start, and is back to ``MIN_BACKOFF_S`` after a
worker lived that long.

The worker runs in a session of its own, so a terminal's Ctrl-C (sent to the
whole foreground group) reaches ``serve`` alone, which then stops the worker
itself: a worker that exits while ``serve`` runs has always failed. It asks the
kernel for SIGTERM when its parent dies (``worker --parent-pid``), so it never
outlives ``serve``, even one killed outright. For that request the parent is
the *thread* that started the child, so the supervisor thread lives as long as
its child does. The worker makes the request itself rather than through a
``preexec_fn``, which is unsafe in a process that runs threads, as ``serve``
does by the time it restarts a worker.
"""

from __future__ import annotations

import logging
import subprocess
import threading
import time

logger = logging.getLogger("api.serve")

MIN_BACKOFF_S = 1.0
MAX_BACKOFF_S = 30.0
STABLE_S = 60.0
STOP_TIMEOUT_S = 30.0


class WorkerSupervisor:
    """Runs ``argv`` as a child until :meth:`stop`, starting it again whenever it exits."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.argv, self.env = argv, env
        self.starts = 0
        self._child: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()  # orders a start against stop()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._supervise, name="worker-supervisor")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """SIGTERM to the worker (Celery's warm shutdown), SIGKILL if it is still up after."""
        with self._lock:
            self._stopping.set()
            child = self._child
        if child is not None and child.poll() is None:
            child.terminate()
            try:
                child.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                child.kill()
        self._thread.join()

    def _supervise(self) -> None:
        backoff = MIN_BACKOFF_S
        while True:
            started = time.monotonic()
            child = self._spawn()
            if child is None:
                return
            code = child.wait()  # reaps it: a dead worker never lingers as a zombie
            if self._stopping.is_set():
                return
            lived = time.monotonic() - started
            if lived >= STABLE_S:
                backoff = MIN_BACKOFF_S
            logger.warning(
                "embedded worker %s exited (%s) after %.1f s; starting another in %.0f s",
                child.pid,
                code,
                lived,
                backoff,
            )
            if self._stopping.wait(backoff):
                return
            backoff = min(backoff * 2, MAX_BACKOFF_S)

    def _spawn(self) -> subprocess.Popen[bytes] | None:
        """A new worker child; None once stopping. Waits out failed starts (out of processes)."""
        while True:
            with self._lock:
                if self._stopping.is_set():
                    return None
                try:
                    self._child = subprocess.Popen(self.argv, env=self.env, start_new_session=True)
                except OSError:
                    logger.exception("could not start the embedded worker")
                else:
                    self.starts += 1
                    return self._child
            if self._stopping.wait(MAX_BACKOFF_S):
                return None
