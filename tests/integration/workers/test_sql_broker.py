"""The embedded SQLite broker's channel under the access pattern of Celery's prefork pool:
one thread polls while another acknowledges, on the same channel and session."""

from __future__ import annotations

import threading
from pathlib import Path

from kombu import Connection

from workers.broker import broker_options

MESSAGES = 200


def test_acks_from_another_thread_while_polling_lose_and_break_nothing(tmp_path: Path) -> None:
    options = broker_options(f"sqla+sqlite:///{tmp_path}/broker.db", 0.01, 3600.0)
    with Connection(options["broker_url"], transport=options["broker_transport"]) as conn:
        channel = conn.channel()
        channel.queue_declare("encode")
        for i in range(MESSAGES):
            channel.basic_publish(channel.prepare_message(str(i)), "", "encode")
        fetched: list[bytes] = []
        errors: list[BaseException] = []
        tags: list[str] = []
        done = threading.Event()

        def ack_loop() -> None:
            try:
                while not (done.is_set() and not tags):
                    if tags:
                        channel.basic_ack(tags.pop())
            except BaseException as exc:  # the test reports it below
                errors.append(exc)

        acker = threading.Thread(target=ack_loop)
        acker.start()
        try:
            for _ in range(MESSAGES):
                message = channel.basic_get("encode", no_ack=False)
                assert message is not None
                fetched.append(message.body)
                tags.append(message.delivery_tag)
        finally:
            done.set()
            acker.join(timeout=30)
        assert not errors, errors
        assert sorted(fetched, key=int) == [str(i).encode() for i in range(MESSAGES)]
        assert channel.basic_get("encode") is None  # every acked row is gone
        assert channel._size("encode") == 0
