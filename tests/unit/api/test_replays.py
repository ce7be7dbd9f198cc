"""Kept responses stay within ``api.replay_cache_bytes``, oldest out first, in this process
and in the Redis that API replicas share."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis

from api.serving.replays import MemoryReplays, RedisReplays, Replays, kept_bytes
from tests.integration.services import redis_server

DIGEST = "d" * 64
BOUND = 10_000


@pytest.fixture(scope="module")
def redis_client() -> Iterator[redis.Redis]:
    with redis_server() as url:
        client = redis.Redis.from_url(url)
        yield client
        client.close()


@pytest.fixture(params=["memory", "redis"])
def make(request: pytest.FixtureRequest, redis_client: redis.Redis):
    """A factory of replay stores with a TTL and a byte bound; Redis ones share one store."""
    if request.param == "memory":
        return MemoryReplays
    redis_client.flushdb()
    return lambda ttl_s, max_bytes: RedisReplays(redis_client, ttl_s, max_bytes)


def response(i: int, size: int) -> bytes:
    return f'{{"i":{i}}}'.encode().ljust(size, b" ")


def kept(replays: Replays, ids: range) -> list[int]:
    return [i for i in ids if replays.get(f"req-{i}") is not None]


def test_the_oldest_responses_go_once_the_kept_bytes_pass_the_bound(make) -> None:
    replays = make(600, BOUND)
    size = 1000
    each = kept_bytes("req-0", DIGEST, response(0, size))
    for i in range(30):
        replays.put(f"req-{i}", DIGEST, response(i, size))
    fit = BOUND // each
    assert kept(replays, range(30)) == list(range(30 - fit, 30))
    assert replays.get("req-29") == (DIGEST, response(29, size))


def test_a_response_larger_than_the_bound_is_not_kept_and_evicts_what_was(make) -> None:
    replays = make(600, BOUND)
    replays.put("req-0", DIGEST, response(0, 100))
    replays.put("req-1", DIGEST, response(1, 2 * BOUND))
    assert kept(replays, range(2)) == []
    replays.put("req-2", DIGEST, response(2, 100))
    assert kept(replays, range(3)) == [2]


def test_a_request_id_kept_again_counts_once(make) -> None:
    """A replay missed (evicted or expired) is ranked afresh and kept under its id again:
    the old bytes must not stay counted, or the bound would shrink with every reuse."""
    replays = make(600, BOUND)
    for _ in range(50):
        replays.put("req-0", DIGEST, response(0, 4000))
    replays.put("req-1", DIGEST, response(1, 4000))
    assert kept(replays, range(2)) == [0, 1]


def test_replicas_keep_within_one_bound_together(redis_client: redis.Redis) -> None:
    redis_client.flushdb()
    a, b = RedisReplays(redis_client, 600, BOUND), RedisReplays(redis_client, 600, BOUND)
    for i in range(20):
        (a if i % 2 else b).put(f"req-{i}", DIGEST, response(i, 1000))
    survivors = kept(b, range(20))
    assert survivors == list(range(20 - len(survivors), 20)) and len(survivors) < 20
    total = int(redis_client.get(RedisReplays.TOTAL))
    assert total == sum(kept_bytes(f"req-{i}", DIGEST, response(i, 1000)) for i in survivors)
    assert total <= BOUND


def test_responses_past_their_ttl_leave_the_ledger_and_the_total(
    redis_client: redis.Redis,
) -> None:
    redis_client.flushdb()
    replays = RedisReplays(redis_client, 0.05, BOUND)
    replays.put("req-old", DIGEST, response(0, 1000))
    time.sleep(0.1)
    replays.put("req-new", DIGEST, response(1, 1000))
    assert replays.get("req-old") is None
    assert redis_client.zrange(RedisReplays.LEDGER, 0, -1) == [b"req-new"]
    assert int(redis_client.get(RedisReplays.TOTAL)) == kept_bytes(
        "req-new", DIGEST, response(1, 1000)
    )
