"""Kept responses, by ``request_id``: in this process, or in Redis for API replicas.

A response is kept for ``api.replay_ttl_s`` as its request's digest and its JSON
bytes. JSON bytes are a third of the memory of the objects, and nothing for the
garbage collector to walk (tens of thousands of responses as objects made its full
collections slower with every request). Behind a load balancer a replay may reach
another replica than the first request did, so replicas keep them in the shared
store (:class:`RedisReplays`).

Both keep at most ``api.replay_cache_bytes`` of responses (with their digests and
ids), the oldest going first: a response at k=500 is ~116 KB, so a bound on the count
alone let one process hold gigabytes. An evicted response is not replayed: the same
request_id ranks afresh, as after its TTL.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Protocol

import redis

from api.serving.shared import shared_call

MAX_REPLAYS = 50_000  # kept in one process, however small: each entry costs objects to walk


class Replays(Protocol):
    def get(self, request_id: str) -> tuple[str, bytes] | None:
        """The digest and response bytes kept under ``request_id``, if not expired."""
        ...

    def put(self, request_id: str, digest: str, response: bytes) -> None: ...


def kept_bytes(request_id: str, digest: str, response: bytes) -> int:
    """What one kept response counts against ``api.replay_cache_bytes``."""
    return len(request_id) + len(digest) + len(response)


class MemoryReplays:
    """The last responses of this process, each for ``ttl_s``, at most :data:`MAX_REPLAYS`
    of them and ``max_bytes`` together."""

    def __init__(self, ttl_s: float, max_bytes: int) -> None:
        self.ttl_s, self.max_bytes = ttl_s, max_bytes
        self._kept: OrderedDict[str, tuple[float, str, bytes]] = OrderedDict()
        self._bytes = 0
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
            old = self._kept.pop(request_id, None)
            if old is not None:
                self._bytes -= kept_bytes(request_id, old[1], old[2])
            self._kept[request_id] = kept
            self._bytes += kept_bytes(request_id, digest, response)
            while self._kept and (len(self._kept) > MAX_REPLAYS or self._bytes > self.max_bytes):
                gone, (_, gone_digest, gone_response) = self._kept.popitem(last=False)
                self._bytes -= kept_bytes(gone, gone_digest, gone_response)


# One atomic step of RedisReplays.put. KEYS: the response's key, the ledger (a sorted set
# of the kept request ids in the order they were kept), each id's counted bytes (a hash),
# their total, the ledger's counter. ARGV: the request id, the value, the TTL (ms), the
# bound, the key prefix. Ids whose response has expired leave the ledger first (one TTL
# for all: they are its oldest); then the oldest go, responses and all, while the total
# is over the bound.
_PUT = """
local key, ledger, sizes, total, counter = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local id, value, ttl_ms, bound, prefix = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5]
local function forget(gone)
    local size = tonumber(redis.call('HGET', sizes, gone) or '0')
    redis.call('HDEL', sizes, gone)
    redis.call('ZREM', ledger, gone)
    return redis.call('DECRBY', total, size)
end
forget(id)
while true do
    local oldest = redis.call('ZRANGE', ledger, 0, 0)[1]
    if not oldest or redis.call('EXISTS', prefix .. oldest) == 1 then break end
    forget(oldest)
end
local size = #id + #value - 1  -- kept_bytes: the value is the digest, a newline, the response
redis.call('SET', key, value, 'PX', ttl_ms)
redis.call('ZADD', ledger, redis.call('INCR', counter), id)
redis.call('HSET', sizes, id, size)
local kept = redis.call('INCRBY', total, size)
while kept > bound do
    local oldest = redis.call('ZRANGE', ledger, 0, 0)[1]
    if not oldest then break end
    redis.call('DEL', prefix .. oldest)
    kept = forget(oldest)
end
return kept
"""


class RedisReplays:
    """Responses in Redis under ``lucidrec:replay:<request_id>``, expiring after ``ttl_s``,
    at most ``max_bytes`` of them for all replicas together (a ledger beside them tells
    the oldest; one Lua script keeps and evicts, so replicas never race on the total)."""

    PREFIX = "lucidrec:replay:"
    LEDGER = "lucidrec:replays:ledger"
    SIZES = "lucidrec:replays:sizes"
    TOTAL = "lucidrec:replays:bytes"
    COUNTER = "lucidrec:replays:counter"

    def __init__(self, client: redis.Redis, ttl_s: float, max_bytes: int) -> None:
        self.client, self.ttl_ms, self.max_bytes = client, int(1000 * ttl_s), max_bytes
        self._put = client.register_script(_PUT)

    def get(self, request_id: str) -> tuple[str, bytes] | None:
        raw = shared_call(self.client.get, self.PREFIX + request_id)
        if raw is None:
            return None
        digest, _, response = raw.partition(b"\n")
        return digest.decode(), response

    def put(self, request_id: str, digest: str, response: bytes) -> None:
        value = digest.encode() + b"\n" + response
        keys = [self.PREFIX + request_id, self.LEDGER, self.SIZES, self.TOTAL, self.COUNTER]
        args = [request_id, value, self.ttl_ms, self.max_bytes, self.PREFIX]
        shared_call(self._put, keys=keys, args=args)
