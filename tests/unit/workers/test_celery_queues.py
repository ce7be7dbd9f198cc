"""Each queue is declared on its own exchange and routing key, as the worker's banner shows.

A bare ``Queue(name)`` took the default queue's exchange and key, so the banner listed
every queue as ``exchange=encode(direct) key=encode``, and the worker bound all three
queues to the ``encode`` exchange with the ``encode`` key.
"""

from __future__ import annotations

import re

from configs import load_settings
from workers.celery_app import QUEUES, create_celery


def test_each_queue_has_its_own_exchange_and_routing_key() -> None:
    app = create_celery(load_settings("test", env={}))
    queues = app.amqp.queues
    assert set(queues) == set(QUEUES)
    for name in QUEUES:
        queue = queues[name]
        assert (queue.exchange.name, queue.exchange.type, queue.routing_key) == (
            name,
            "direct",
            name,
        )
    banner = {
        match[0]: (match[1], match[2])
        for match in re.findall(r"\.> (\S+)\s+exchange=(\S+) key=(\S+)", queues.format())
    }
    assert banner == {name: (f"{name}(direct)", name) for name in QUEUES}


def test_tasks_are_routed_to_their_queue() -> None:
    app = create_celery(load_settings("test", env={}))
    for name in QUEUES:
        route = app.amqp.router.route({}, f"lucidrec.{name}.anything", args=(), kwargs={})
        queue = route["queue"]
        assert (queue.name, queue.exchange.name, queue.routing_key) == (name, name, name)
