"""``serve --workers N``: N API processes, each with its own listener in one SO_REUSEPORT group.

uvicorn's own multiprocess mode binds one socket in the parent, and every process
accepts from it. The kernel wakes the process that went to wait last, so
connections opened together mostly land on one process: eight kept-alive client
connections got 79 requests/s from two processes, what one process serves alone.
With a listener per process in one ``SO_REUSEPORT`` group (Linux), the kernel
picks a process for each new connection by a hash of its addresses.

The supervisor here starts the processes, starts another when one dies, forwards
SIGHUP (each process reloads its experiments file) and stops them all on SIGTERM
or SIGINT. A process that fails its start-up stops the whole service: restarting
it would fail the same way.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import os
import signal
import socket
import time
from multiprocessing.process import BaseProcess
from typing import Any

logger = logging.getLogger("api.serve")

APP = "api.app:app_from_environment"  # each process builds the app from the environment
STOP_TIMEOUT_S = 30.0


class StartupError(RuntimeError):
    """The port cannot be had, or an API process exited while starting."""


def die_with_parent(parent_pid: int | None = None) -> None:
    """In a child (Linux): get SIGTERM when ``serve`` dies, even by SIGKILL.

    With ``parent_pid``, a child whose parent already died before the request
    (it would wait for a signal that never comes) gets its SIGTERM at once.
    """
    with contextlib.suppress(OSError, AttributeError):  # elsewhere serve's finally stops it
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if parent_pid is not None and os.getppid() != parent_pid:
        os.kill(os.getpid(), signal.SIGTERM)


def listener(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``(host, port)`` in that port's SO_REUSEPORT group."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(address)
    return sock


def serve_one(options: dict[str, Any]) -> None:
    """One API process: its own listener, then uvicorn on it until SIGTERM."""
    import uvicorn

    die_with_parent()
    # a SIGHUP forwarded before the app installs its reload handler must not kill us
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    sock = listener(options["host"], options["port"])
    uvicorn.Server(uvicorn.Config(APP, factory=True, **options)).run(sockets=[sock])


def serve_processes(options: dict[str, Any], processes: int) -> None:
    """Run ``processes`` API processes with uvicorn ``options`` until SIGTERM or SIGINT."""
    from uvicorn.config import STARTUP_FAILURE

    try:  # a taken port or a bad host fails here, once
        listener(options["host"], options["port"]).close()
    except OSError as exc:
        raise StartupError(
            f"cannot listen on {options['host']}:{options['port']}: {exc.strerror or exc}; "
            "pick another --port or stop what holds it"
        ) from None
    context = multiprocessing.get_context("spawn")
    received: list[int] = []
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda sig, _frame: received.append(sig))

    def start() -> BaseProcess:
        child = context.Process(target=serve_one, args=(options,), name="lucidrec-api")
        child.start()
        return child

    children = [start() for _ in range(processes)]
    try:
        while True:
            while received:
                if received.pop(0) != signal.SIGHUP:
                    return
                for child in children:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(child.pid, signal.SIGHUP)
            for i, child in enumerate(children):
                if child.is_alive():
                    continue
                if child.exitcode == STARTUP_FAILURE:
                    raise StartupError(
                        f"API process {child.pid} failed to start: see its log above"
                    )
                logger.warning(
                    "API process %s exited (%s); starting another", child.pid, child.exitcode
                )
                children[i] = start()
            time.sleep(0.2)
    finally:
        stop_all(children)


def stop_all(children: list[BaseProcess]) -> None:
    """SIGTERM to every child (uvicorn's graceful shutdown), SIGKILL to any still up after."""
    for child in children:
        if child.is_alive():
            child.terminate()
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for child in children:
        child.join(max(0.0, deadline - time.monotonic()))
        if child.is_alive():
            child.kill()
            child.join()
