"""The embedded SQLite broker gives a message back at the head of its queue, not behind the
backlog, whether its consumer requeues it or died holding it (a real process, SIGKILLed).
SQLite sorts a missing claim time (NULL) first: a message given back with one went last."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
from kombu import Connection

from workers.broker import broker_options

CLAIM_AND_DIE = """
import os, signal, sys
from kombu import Connection
from workers.broker import broker_options
options = broker_options(sys.argv[1], 0.01, 3600.0)
channel = Connection(options["broker_url"], transport=options["broker_transport"]).channel()
print(channel.basic_get("encode", no_ack=False).body.decode(), flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.fixture
def broker_url(tmp_path: Path) -> str:
    return f"sqla+sqlite:///{tmp_path}/broker.db"


def connect(url: str) -> Connection:
    options = broker_options(url, 0.01, 3600.0)  # no redelivery by timeout within the test
    return Connection(options["broker_url"], transport=options["broker_transport"])


def publish(url: str, count: int) -> None:
    with connect(url) as conn:
        channel = conn.channel()
        channel.queue_declare("encode")
        for i in range(count):
            channel.basic_publish(channel.prepare_message(str(i)), "", "encode")


def test_a_requeued_message_is_delivered_next(broker_url: str) -> None:
    publish(broker_url, 3)
    with connect(broker_url) as conn:
        channel = conn.channel()
        first = channel.basic_get("encode", no_ack=False)
        channel.basic_reject(first.delivery_tag, requeue=True)
        again = channel.basic_get("encode", no_ack=False)
        assert (first.body, again.body) == (b"0", b"0")
        channel.basic_ack(again.delivery_tag)


def test_the_message_of_a_killed_consumer_is_delivered_first_to_the_next(broker_url: str) -> None:
    publish(broker_url, 3)
    dead = subprocess.run(
        [sys.executable, "-c", CLAIM_AND_DIE, broker_url], capture_output=True, text=True
    )
    assert dead.returncode == -signal.SIGKILL and dead.stdout.strip() == "0", dead.stderr
    with connect(broker_url) as conn:
        channel = conn.channel()
        channel.basic_consume("encode", False, lambda message: None, "next-worker")
        bodies = []
        for _ in range(3):
            message = channel.basic_get("encode", no_ack=False)
            bodies.append(message.body)
            channel.basic_ack(message.delivery_tag)
    assert bodies == [b"0", b"1", b"2"]
