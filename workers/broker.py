"""The embedded broker: kombu's SQLAlchemy transport, made at-least-once and quicker to poll.

Three gaps in kombu's SQLAlchemy transport matter for a task queue that must not
lose work:

- A fetched message is only marked invisible; it is restored by the consumer's
  in-memory bookkeeping on a clean shutdown. A worker killed with SIGKILL takes
  that bookkeeping with it and the message is never delivered again. Here a
  fetched message is *claimed* (invisible, stamped with the claim time), an ack
  deletes its row, and a claim older than ``visibility_timeout`` is taken again
  by any consumer: the visibility-timeout model of the Redis and SQS transports.
  The timeout must exceed the longest task (the hard time limit).
- That timeout is the only recovery when nothing is known of the claimant, so a
  SIGKILLed worker's in-flight task waited the whole ``redelivery_timeout_s``
  (15 minutes by default) although its restart came seconds later. Each claim
  therefore records its claimant (``host:pid:start``, :mod:`workers.identity`)
  in a side table, ``lucidrec_claim`` (kombu's message table has no column for
  it), and a channel that starts consuming first makes visible again every
  message whose claimant is provably dead: same host, process gone. Claims of
  other hosts still wait out the timeout. A message made visible again (this
  way, or requeued, or unacked at shutdown) loses its claim time, as it had
  none when published, so it sorts by id again, ahead of the messages sent
  after it; with its claim time kept it went behind them all (SQLite sorts
  NULL first).
- kombu reads ``polling_interval`` from ``broker_transport_options``, but this
  transport also passes every transport option to ``sqlalchemy.create_engine()``,
  which refuses the unknown keyword. The supported hook is the transport class's
  ``polling_interval`` attribute, so the class is built with the configured value
  and handed to Celery as ``broker_transport``, the ``sqla+`` prefix dropped.

kombu caches each URL's engine in a class attribute, so a forked process inherits
its parent's engine and the SQLite connections pooled in it. Celery forks such
children: the embedded beat (after a ``train`` worker has already published, in
:func:`workers.runner.run_worker`) and replacement pool processes. SQLite
connections must not cross a fork (their file locks stay with the parent, and
the beat even closes the inherited descriptors while the connection's state
still names them), and SQLite's per-process bookkeeping of a file is shared by
every connection of that process to it, so a child that opens a new connection
beside an inherited one is as broken (``locking protocol``, then a beat that
never sends again). Here the engines are therefore this process's own: a fork
first closes the parent's idle pooled connections (the parent reconnects as
needed), and the child makes new engines, keeping the inherited ones alive but
unused, as closing their connections there would act on the parent's files.

Claiming makes an ack a database write, and Celery's prefork pool acknowledges
from its result-handler thread while the consumer thread polls: both would drive
the channel's one SQLAlchemy session at once (``cannot start a transaction
within a transaction``, then an unrecoverable worker). Every use of that session
therefore holds the channel's lock.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kombu.transport import sqlalchemy as kombu_sqla
from kombu.utils.json import loads
from sqlalchemy import (
    Column,
    Integer,
    MetaData,
    String,
    Table,
    delete,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import sessionmaker
from sqlalchemy.schema import CreateTable

from workers.broker_redis import ClaimantTransport
from workers.catalog.engine import apply_sqlite_pragmas
from workers.identity import provably_dead, this_process

logger = logging.getLogger(__name__)

SQLA_PREFIX = "sqla+"

# who holds each claimed message; a row lives from the claim to the ack or requeue, so
# the table holds only messages in flight (no index beyond the key is worth its writes)
CLAIMS = Table(
    "lucidrec_claim",
    MetaData(),
    Column("message_id", Integer, primary_key=True, autoincrement=False),
    Column("owner", String(300), nullable=False),
)

# this process's engines and session factories, by URL (see the module docstring)
_engines: dict[str, tuple[Any, Any]] = {}
_engines_lock = threading.Lock()
# engines a forked child inherited: kept referenced so that nothing closes them here
_inherited: list[tuple[Any, Any]] = []


def _close_idle_connections() -> None:
    """Before a fork, in the parent: close the pooled connections no one is using."""
    for engine, _ in list(_engines.values()):
        engine.dispose()  # connections checked out stay with their users


def _forget_inherited_engines() -> None:
    """After a fork, in the child: make new engines, never touch the parent's."""
    global _engines_lock
    _engines_lock = threading.Lock()  # another thread of the parent may have held it
    _inherited.extend(_engines.values())
    _engines.clear()


os.register_at_fork(before=_close_idle_connections, after_in_child=_forget_inherited_engines)


def _serialized(method: Callable[..., Any]) -> Callable[..., Any]:
    """Run ``method`` holding the channel's session lock (see the module docstring)."""

    @functools.wraps(method)
    def locked(self: ClaimingChannel, *args: Any, **kwargs: Any) -> Any:
        with self._session_lock:
            return method(self, *args, **kwargs)

    return locked


class ClaimingChannel(kombu_sqla.Channel):
    """A channel whose deliveries survive the death of the consumer that fetched them."""

    visibility_timeout: float = 3600.0

    def __init__(self, connection: Any, **kwargs: Any) -> None:
        self._session_lock = threading.RLock()
        self._url = connection.client.hostname  # a closed channel has no connection, still a URL
        super().__init__(connection, **kwargs)
        self._claims: dict[str, int] = {}  # delivery tag -> message row id
        self._dead_claims_restored = False

    _put = _serialized(kombu_sqla.Channel._put)
    _purge = _serialized(kombu_sqla.Channel._purge)
    _size = _serialized(kombu_sqla.Channel._size)
    _get_or_create = _serialized(kombu_sqla.Channel._get_or_create)

    @_serialized
    def _get(self, queue: str) -> dict[str, Any]:
        q = self._get_or_create(queue)
        model, session = self.message_cls, self.session
        try:
            if session.bind.name == "sqlite":
                session.execute(text("BEGIN IMMEDIATE TRANSACTION"))
            expired = dt.datetime.now() - dt.timedelta(seconds=self.visibility_timeout)
            msg = (
                session.query(model)
                .with_for_update()
                .filter(model.queue_id == q.id)
                .filter(or_(model.visible.is_(True), model.sent_at < expired))
                .order_by(model.sent_at, model.id)
                .limit(1)
                .first()
            )
            if msg is not None:
                msg.visible = False
                msg.sent_at = dt.datetime.now()  # the claim time
                payload = loads(kombu_sqla.bytes_to_str(msg.payload))
                row_id = msg.id
                session.flush()
                # a claim taken over after the timeout changes hands
                session.execute(delete(CLAIMS).where(CLAIMS.c.message_id == row_id))
                session.execute(insert(CLAIMS).values(message_id=row_id, owner=this_process()))
            session.commit()
        except Exception:
            session.rollback()  # never leave kombu's shared session in a failed state
            raise
        if msg is None:
            raise kombu_sqla.Empty()
        self._claims[payload["properties"]["delivery_tag"]] = row_id
        return payload

    def _open(self) -> tuple[Any, Any]:
        """This process's engine and session factory for the URL (kombu's cache crosses forks)."""
        url = self._url
        with _engines_lock:
            if url not in _engines:
                engine = self._engine_from_config()
                kombu_sqla.metadata.create_all(engine)
                _engines[url] = (engine, sessionmaker(bind=engine))
            return _engines[url]

    def close(self) -> None:
        """Close the channel, then its session: its connection goes back to the pool.

        kombu may still publish on a channel it closed (a producer revived mid-publish);
        that opens a new session.
        """
        super().close()
        with self._session_lock:
            session, self._session = self._session, None
            if session is not None:
                with contextlib.suppress(SQLAlchemyError):  # a broken connection is dropped
                    session.close()

    def _engine_from_config(self) -> Any:
        """The engine, once per process and URL; the claim table is made with kombu's tables."""
        engine = super()._engine_from_config()
        if engine.dialect.name == "sqlite":
            apply_sqlite_pragmas(engine)
        with engine.begin() as conn:  # IF NOT EXISTS: the API and its worker start together
            conn.execute(CreateTable(CLAIMS, if_not_exists=True))
        return engine

    def basic_consume(self, queue: str, *args: Any, **kwargs: Any) -> Any:
        """Start consuming ``queue``, the first time after restoring dead claimants' messages."""
        if not self._dead_claims_restored:
            self._restore_dead_claims()
            self._dead_claims_restored = True
        return super().basic_consume(queue, *args, **kwargs)

    @_serialized
    def _restore_dead_claims(self) -> int:
        """Make visible the messages claimed by processes of this host that are gone."""
        session = self.session
        messages = self.message_cls.__table__
        try:
            if session.bind.name == "sqlite":
                session.execute(text("BEGIN IMMEDIATE TRANSACTION"))
            owners = session.scalars(select(CLAIMS.c.owner).distinct()).all()
            dead = [owner for owner in owners if provably_dead(owner)]
            restored = 0
            if dead:
                claimed = select(CLAIMS.c.message_id).where(CLAIMS.c.owner.in_(dead))
                restored = session.execute(
                    update(messages)
                    .where(messages.c.id.in_(claimed))
                    .values(visible=True, timestamp=None)  # no claim time: sorts by id
                ).rowcount
                session.execute(delete(CLAIMS).where(CLAIMS.c.owner.in_(dead)))
            session.commit()
        except Exception:
            session.rollback()  # never leave kombu's shared session in a failed state
            raise
        if restored:
            logger.warning(
                "redelivering %d message(s) claimed by dead worker(s) %s",
                restored,
                ", ".join(dead),
            )
        return int(restored or 0)

    @_serialized
    def _settle(self, delivery_tag: str, *, requeue: bool) -> bool:
        """Delete (or make visible again) the row behind a delivery; False if none is claimed."""
        row_id = self._claims.pop(delivery_tag, None)
        if row_id is None:
            return False
        session = self.session
        try:
            if session.bind.name == "sqlite":
                session.execute(text("BEGIN IMMEDIATE TRANSACTION"))
            rows = session.query(self.message_cls).filter(self.message_cls.id == row_id)
            if requeue:  # no claim time: it sorts by id again (see the module docstring)
                rows.update({"visible": True, "sent_at": None}, synchronize_session=False)
            else:
                rows.delete(synchronize_session=False)
            session.execute(delete(CLAIMS).where(CLAIMS.c.message_id == row_id))
            session.commit()
        except Exception:
            session.rollback()  # never leave kombu's shared session in a failed state
            raise
        return True

    def basic_ack(self, delivery_tag: str, multiple: bool = False) -> None:
        super().basic_ack(delivery_tag, multiple)
        self._settle(delivery_tag, requeue=False)

    def basic_reject(self, delivery_tag: str, requeue: bool = False) -> None:
        if requeue and self._settle(delivery_tag, requeue=True):
            self.qos._quick_ack(delivery_tag)  # the row is visible again: do not re-publish
            return
        super().basic_reject(delivery_tag, requeue)
        self._settle(delivery_tag, requeue=False)

    def _restore(self, message: Any) -> None:
        """Unacked at shutdown: make the claimed row visible instead of publishing a copy."""
        if not self._settle(message.delivery_tag, requeue=True):
            super()._restore(message)


def sqlalchemy_transport(polling_interval: float, visibility_timeout: float) -> type:
    """kombu's SQLAlchemy transport with claiming deliveries and the given poll interval."""
    channel = type(
        "LucidrecSQLChannel",
        (ClaimingChannel,),
        {"visibility_timeout": visibility_timeout, "__module__": __name__},
    )
    return type(
        "LucidrecSQLTransport",
        (kombu_sqla.Transport,),
        {"Channel": channel, "polling_interval": polling_interval, "__module__": __name__},
    )


def broker_options(url: str, polling_interval: float, visibility_timeout: float) -> dict[str, Any]:
    """Celery settings that select the broker for ``url``.

    Redis gets the same visibility timeout, which is what redelivers a task whose
    worker died before acknowledging it on another host, and kombu's Redis
    transport with claimants recorded (:mod:`workers.broker_redis`) for one that
    died on the restarted worker's host.
    """
    if url.startswith(SQLA_PREFIX):
        transport = sqlalchemy_transport(polling_interval, visibility_timeout)
        return {"broker_url": url[len(SQLA_PREFIX) :], "broker_transport": transport}
    if url.startswith(("redis://", "rediss://")):
        return {
            "broker_url": url,
            "broker_transport": ClaimantTransport,
            "broker_transport_options": {"visibility_timeout": visibility_timeout},
        }
    return {"broker_url": url}


def ensure_sqlite_folder(url: str) -> None:
    """Create the folder of a SQLite broker or result-backend URL (``sqla+``/``db+`` prefixed)."""
    bare = url.split("+", 1)[1] if url.startswith(("sqla+", "db+")) else url
    if not bare.startswith("sqlite:"):
        return
    database = make_url(bare).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
