"""Kept responses, by ``request_id``: in this process, or in Redis for API replicas.

A response is kept for ``api.replay_ttl_s`` as its request's digest and its JSON
bytes. JSON bytes are a third of the memory of the objects, and nothing for the
garbage collector to walk (tens of thousands of responses as objects made its full
collections slower with every request). Behind a load balancer a replay may reach
another replica than the first request did, so replicas keep them in the shared
store (:class:`RedisReplays`).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Protocol

import redis

from api.serving.shared import shared_call

MAX_REPLAYS = 50_000  # kept in one process; Redis expires its own


class Replays(Protocol):
    def get(self, request_id: str) -> tuple[str, bytes] | None:
        """The digest and response bytes kept under ``request_id``, if not expired."""
        ...

    def put(self, request_id: str, digest: str, response: bytes) -> None: ...


class MemoryReplays:
    """The last :data:`MAX_REPLAYS` responses of this process, each for ``ttl_s``."""

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._kept: OrderedDict[str, tuple[float, str, bytes]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, request_id: str) -> tuple[str, bytes] | None:
        with self._lock:
            found = self._kept.get(request_id)
        if found is None or found[0] < time.monotonic():
            return None
        return found[1], found[2]

    def put(self, request_id: str, digest: str, response: bytes) -> None:
        kept = (time.monotonic() + self.ttl_s, digest, response)
        with self._lock:
            self._kept[request_id] = kept
            while len(self._kept) > MAX_REPLAYS:
                self._kept.popitem(last=False)


class RedisReplays:
    """Responses in Redis under ``lucidrec:replay:<request_id>``, expiring after ``ttl_s``."""

    PREFIX = "lucidrec:replay:"

    def __init__(self, client: redis.Redis, ttl_s: float) -> None:
        self.client, self.ttl_ms = client, int(1000 * ttl_s)

    def get(self, request_id: str) -> tuple[str, bytes] | None:
        raw = shared_call(self.client.get, self.PREFIX + request_id)
        if raw is None:
            return None
        digest, _, response = raw.partition(b"\n")
        return digest.decode(), response

    def put(self, request_id: str, digest: str, response: bytes) -> None:
        value = digest.encode() + b"\n" + response
        shared_call(self.client.set, self.PREFIX + request_id, value, px=self.ttl_ms)
