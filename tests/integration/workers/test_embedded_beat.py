"""The embedded beat on the SQLite broker keeps sending maintenance: it opens its own broker
connection rather than one forked from its worker, and renews it after a failed send."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest
from celery.beat import SchedulingError
from kombu import Connection
from sqlalchemy import event

from tests.integration.workers.harness import Worker, client, worker_env
from workers.broker import broker_options
from workers.embedded_beat import Scheduler

BROKEN = ("locking protocol", "channel disconnected", "Message Error")


def _maintenance_runs(results: Path) -> int:
    if not results.exists():
        return 0
    with sqlite3.connect(results) as db:
        try:
            (count,) = db.execute(
                "SELECT count(*) FROM celery_taskmeta"
                " WHERE name = 'lucidrec.maintenance.run' AND status = 'SUCCESS'"
            ).fetchone()
        except sqlite3.OperationalError:  # the worker has not made its tables yet
            return 0
    return count


def _hammer(url: str, stop: threading.Event, errors: list[BaseException]) -> None:
    """Publish to the broker as fast as one connection can, to a queue nobody consumes."""
    options = broker_options(url, 0.05, 3600.0)
    try:
        with Connection(options["broker_url"], transport=options["broker_transport"]) as conn:
            channel = conn.channel()
            channel.queue_declare("hammer")
            while not stop.is_set():
                channel.basic_publish(channel.prepare_message("x" * 200), "", "hammer")
    except BaseException as exc:  # reported by the test
        errors.append(exc)


def test_embedded_beat_of_a_train_worker_keeps_sending_maintenance_under_load(
    tmp_path: Path,
) -> None:
    # serve's worker consumes train too: it publishes before Celery forks the beat from it
    env = worker_env(
        tmp_path,
        "sqlite",
        f"sqlite:///{tmp_path}/catalog.db",
        LUCIDREC_WORKERS__MAINTENANCE_INTERVAL_S="1",
    )
    stop, errors = threading.Event(), []
    hammer = threading.Thread(
        target=_hammer, args=(f"sqla+sqlite:///{tmp_path}/broker.db", stop, errors), daemon=True
    )
    worker = Worker(env, "train,maintenance", tmp_path / "worker.log", beat=True)
    try:
        hammer.start()
        results = tmp_path / "results.db"
        deadline = time.monotonic() + 40
        while _maintenance_runs(results) < 1 and time.monotonic() < deadline:
            assert worker.proc.poll() is None, "the worker exited"
            time.sleep(0.5)
        first = _maintenance_runs(results)
        assert first >= 1, "the beat never got maintenance applied"
        time.sleep(8)  # a beat that failed once would stop here for good
        assert _maintenance_runs(results) >= first + 4
    finally:
        stop.set()
        hammer.join(timeout=30)
        worker.stop()
    assert not errors, errors
    log = worker.log.read_text(errors="replace")
    assert not [line for line in log.splitlines() if any(word in line for word in BROKEN)]


@pytest.mark.parametrize("faults", [2, 3])
def test_beat_sends_again_after_a_broker_error(tmp_path: Path, faults: int) -> None:
    """``faults`` errors on the queue lookup of one send: 2 leave kombu's producer on a channel
    it closed although the send succeeded, 3 fail the send itself. Either way, later sends work."""
    env = worker_env(tmp_path, "sqlite", f"sqlite:///{tmp_path}/catalog.db")
    app, _ = client(env)
    beat = Scheduler(app, schedule_filename=str(tmp_path / "schedule"), lazy=True)
    beat.setup_schedule()
    entry = beat.schedule["maintenance"]
    left = {"faults": 0}

    def locking_protocol(conn, cursor, statement, *_) -> None:
        if left["faults"] and "FROM kombu_queue" in statement:
            left["faults"] -= 1
            raise sqlite3.OperationalError("locking protocol")

    def send() -> bool:
        try:
            beat.apply_async(entry, producer=beat.producer, advance=False)
        except SchedulingError:
            return False
        return True

    try:
        assert send()
        engine = beat.producer.channel.session.get_bind()
        event.listen(engine, "before_cursor_execute", locking_protocol)
        left["faults"] = faults
        sent = [send() for _ in range(4)]
        event.remove(engine, "before_cursor_execute", locking_protocol)
    finally:
        beat.close()
    assert left["faults"] == 0
    assert sent[1:] == [True, True, True], sent  # at most the send that met the errors failed
    with sqlite3.connect(tmp_path / "broker.db") as db:
        (stored,) = db.execute(
            "SELECT count(*) FROM kombu_message m JOIN kombu_queue q ON m.queue_id = q.id"
            " WHERE q.name = 'maintenance'"
        ).fetchone()
    assert stored == 1 + sum(sent)
