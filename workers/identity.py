"""Who owns a broker claim or a heartbeat, and whether that owner is known dead or alive.

A claim or a heartbeat outlives the process that wrote it when that process is
SIGKILLed. Waiting out a timeout is the only recovery that works across
machines, but a process on the owner's own machine knows the truth at once
from the process table: the owner is dead if no process has its pid, if the
pid is a zombie (dead, not yet reaped by its parent), or if the pid now names
a process started at another time (pid reuse, such as a container's restarted
PID 1); alive otherwise.

An owner is written ``machine:pid:start``. ``start`` is the process's start
time in clock ticks since boot (Linux ``/proc/<pid>/stat``; empty elsewhere,
where only a missing pid proves death). ``machine`` is the host name *and* the
pid namespace: containers that share the host's name (Kubernetes
``hostNetwork`` pods) have process tables of their own, and a pid looked up in
the wrong one would declare a live owner dead.
"""

from __future__ import annotations

import functools
import os
import socket

_DEAD_STATES = {"Z", "X", "x"}  # zombie, dead


def _stat(pid: int) -> tuple[str, str] | None:
    """(state, start ticks) of ``pid`` from /proc, or None where /proc cannot tell."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()  # the name may hold spaces and ')'
    except FileNotFoundError:
        return ("X", "") if os.path.isdir("/proc/self") else None
    except (OSError, IndexError):
        return None
    return fields[0], fields[19]


def _machine() -> str:
    """This host's name and pid namespace (its inode), e.g. ``web-1/4026531836``."""
    try:
        namespace = os.readlink("/proc/self/ns/pid").strip("pid:[]")
    except OSError:  # not Linux
        namespace = ""
    return f"{socket.gethostname()}/{namespace}"


@functools.cache
def _owner(pid: int) -> str:
    stat = _stat(pid)
    return f"{_machine()}:{pid}:{stat[1] if stat else ''}"


def this_process() -> str:
    """This process as an owner, ``machine:pid:start`` (computed again after a fork)."""
    return _owner(os.getpid())


def alive_here(owner: str) -> bool | None:
    """Whether ``owner``'s process is alive, if it ran on this machine; None if not known."""
    try:
        machine, pid_text, start = owner.rsplit(":", 2)
        pid = int(pid_text)
    except ValueError:
        return None
    if machine != _machine() or pid <= 0:
        return None
    stat = _stat(pid)
    if stat is None:  # no /proc: only a missing pid is proof
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # someone else's process
            pass
        return True
    state, ticks = stat
    return state not in _DEAD_STATES and not (start and ticks and ticks != start)


def provably_dead(owner: str) -> bool:
    """True only if ``owner`` ran on this machine and its process is gone."""
    return alive_here(owner) is False
