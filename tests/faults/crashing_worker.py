"""``lucidrec worker`` that SIGKILLs itself, once, at chosen points of chosen encode tasks.

``python -m tests.faults.crashing_worker worker --queues encode ...`` runs the real
command line. ``CRASH_PLAN="room0:before,room1:during,room2:after"`` names, per
room, where its encode task dies: ``before`` the task body runs (the message
claimed, nothing encoded), ``during`` the encoding (half the batch encoded,
nothing stored), ``after`` the batch is stored (committed, not yet acknowledged).
The pool process then SIGKILLs the worker's whole process group, as a crash or
the OOM killer would, after leaving a mark in ``CRASH_MARKS`` so that the
restarted worker runs the task to the end.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

from celery import signals

from encoder import SliceEncoder
from workers.catalog import Catalog

PLAN = dict(item.split(":") for item in os.environ.get("CRASH_PLAN", "").split(",") if item)
MARKS = Path(os.environ.get("CRASH_MARKS", "."))
_room: str | None = None  # the room of the encode task this pool process runs


def crash_if_planned(point: str) -> None:
    if _room is None or PLAN.get(_room) != point:
        return
    try:
        os.close(os.open(MARKS / f"crashed-{_room}-{point}", os.O_CREAT | os.O_EXCL))
    except FileExistsError:  # crashed here once already: this is the redelivery
        return
    os.killpg(os.getpgrp(), signal.SIGKILL)


@signals.task_prerun.connect
def _before(task: Any = None, args: Any = None, **_: Any) -> None:
    global _room
    _room = args[0] if task is not None and task.name == "lucidrec.encode.slices" else None
    crash_if_planned("before")


_encode_each = SliceEncoder.encode_each
_store_encoded = Catalog.store_encoded


def _during(self: SliceEncoder, slices: Any, *args: Any, **kwargs: Any) -> Any:
    half = _encode_each(self, slices[: len(slices) // 2], *args, **kwargs)
    crash_if_planned("during")
    return half + _encode_each(self, slices[len(slices) // 2 :], *args, **kwargs)


def _after(self: Catalog, *args: Any, **kwargs: Any) -> int:
    stored = _store_encoded(self, *args, **kwargs)
    crash_if_planned("after")
    return stored


SliceEncoder.encode_each = _during  # type: ignore[method-assign]
Catalog.store_encoded = _after  # type: ignore[method-assign]

if __name__ == "__main__":
    from api.cli import main

    main()
