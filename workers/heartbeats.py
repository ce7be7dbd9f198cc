"""Which queues live workers consume, from heartbeats in the catalog: what ``/ready`` reads.

Why the catalog: every API process and every worker already shares it, in every
deployment and whatever the broker (one SQLite file on one host, PostgreSQL
across hosts). A file would serve one host only; serve's view of its own child
says nothing of workers run elsewhere; Celery's own worker heartbeats are
events on a fanout exchange, which kombu's SQLAlchemy transport cannot carry
between processes, and a broadcast ping would cost each probe a round trip.
The rows live in ``catalog_state`` under ``worker:`` keys, so the catalog's
schema (owned by :mod:`workers.catalog`) is unchanged.

A worker's consumer beats every ``BEAT_S`` from a thread of its own, started
once the task consumer is (a Celery consumer bootstep), and deletes its row
when the consumer stops: on shutdown and while the broker is lost. The
consumer's timer would not do: a solo-pool worker (the trainer) runs its task
in the timer's loop and would miss beats for as long as a task runs.

A worker on the reader's machine counts while its process lives, which the
process table tells exactly (:mod:`workers.identity`): a SIGKILLed worker stops
counting at once, and a beat held up by a long write to a SQLite catalog does
not make a live one look gone. A worker on another machine counts while its
last beat is younger than ``STALE_S`` (the hosts' clocks must agree to within a
few seconds), so its death shows ``STALE_S`` after its last beat.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from celery import bootsteps
from sqlalchemy import delete, select, update

from workers.catalog import schema
from workers.catalog.engine import make_engines
from workers.identity import alive_here, provably_dead, this_process

logger = logging.getLogger(__name__)

BEAT_S = 2.0
STALE_S = 10.0
RETENTION_S = 3600.0  # the next worker to start deletes rows this old
PREFIX = "worker:"
Row = schema.CatalogState


@dataclass(frozen=True)
class Beat:
    owner: str
    queues: tuple[str, ...]
    at: float

    def live(self, now: float) -> bool:
        """Alive on this machine, or else (another machine) beaten within ``STALE_S``."""
        here = alive_here(self.owner)
        return here if here is not None else now - self.at < STALE_S


class Heartbeats:
    """The ``worker:`` rows of the catalog's ``catalog_state`` table."""

    def __init__(self, url: str) -> None:
        self._writer, self._reader = make_engines(url)
        with self._writer.begin() as conn:
            schema.upgrade(conn)

    def close(self) -> None:
        self._writer.dispose()
        self._reader.dispose()

    def beat(self, owner: str, queues: list[str]) -> None:
        key = _key(owner)
        value = json.dumps({"owner": owner, "queues": queues, "at": time.time()})
        with self._writer.begin() as conn:  # only the owner writes its key: no upsert race
            if not conn.execute(update(Row).where(Row.key == key).values(value=value)).rowcount:
                conn.execute(Row.__table__.insert().values(key=key, value=value))

    def forget(self, owners: list[str]) -> None:
        if owners:
            with self._writer.begin() as conn:
                conn.execute(delete(Row).where(Row.key.in_([_key(o) for o in owners])))

    def beats(self) -> list[Beat]:
        with self._reader.begin() as conn:
            values = conn.scalars(select(Row.value).where(Row.key.startswith(PREFIX))).all()
        beats = []
        for value in values:
            fields = json.loads(value or "{}")
            beats.append(Beat(fields["owner"], tuple(fields["queues"]), float(fields["at"])))
        return beats

    def prune(self) -> None:
        """Delete the rows of workers provably dead or silent for ``RETENTION_S``."""
        now = time.time()
        self.forget(
            [b.owner for b in self.beats() if now - b.at > RETENTION_S or provably_dead(b.owner)]
        )

    def unserved(self, queues: tuple[str, ...]) -> str | None:
        """Why some of ``queues`` have no live consumer (naming the last one seen), or None."""
        now = time.time()
        beats = self.beats()
        missing = [q for q in queues if not any(q in b.queues and b.live(now) for b in beats)]
        if not missing:
            return None
        reason = f"no worker consumes the {', '.join(missing)} queue(s)"
        last = max(
            (b for b in beats if set(missing) & set(b.queues)), key=lambda b: b.at, default=None
        )
        if last is None:
            return f"{reason}: none has started"
        if provably_dead(last.owner):
            return f"{reason}: the last one, {last.owner}, is dead"
        return f"{reason}: the last one, {last.owner}, last beat {now - last.at:.0f} s ago"


def _key(owner: str) -> str:
    """A key of at most 64 characters (the column's width) whatever the host name's length."""
    return PREFIX + hashlib.sha1(owner.encode()).hexdigest()


class HeartbeatStep(bootsteps.StartStopStep):
    """Consumer bootstep: beat while the task consumer runs (see the module docstring)."""

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, c: Any, **kwargs: Any) -> None:
        super().__init__(c, **kwargs)
        self._board: Heartbeats | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, c: Any) -> None:
        if self._board is None:
            self._board = Heartbeats(c.app.settings.catalog.url)
            self._board.prune()
        queues = sorted(c.app.amqp.queues.consume_from)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run,
            args=(self._board, this_process(), queues, self._stop),
            name="lucidrec-heartbeat",
            daemon=True,
        )
        self._thread.start()

    def stop(self, c: Any) -> None:
        if self._thread is None or self._board is None:
            return
        self._stop.set()
        self._thread.join(timeout=10)
        self._thread = None
        try:
            self._board.forget([this_process()])
        except Exception:  # the catalog is down: the row goes stale instead
            logger.warning("could not delete this worker's heartbeat", exc_info=True)

    shutdown = stop

    @staticmethod
    def _run(board: Heartbeats, owner: str, queues: list[str], stop: threading.Event) -> None:
        failing = False
        while True:
            try:
                board.beat(owner, queues)
                failing = False
            except Exception:  # the catalog is down: /ready says so; beat again when it is back
                if not failing:
                    logger.warning("heartbeat to the catalog failed", exc_info=True)
                failing = True
            if stop.wait(BEAT_S):
                return
