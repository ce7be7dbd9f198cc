"""The shared-state store of API replicas (Redis): its client and its one error.

Every call into the store goes through :func:`shared_call`, so an unreachable or
failing Redis reaches the handlers as :class:`SharedStateError`, which they answer
with 503 (a problem body naming the store), never as a 500.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import redis

T = TypeVar("T")


class SharedStateError(RuntimeError):
    """The shared-state store could not be read or written."""


def connect(url: str) -> redis.Redis:
    """A client of the store at ``url`` (redis://host:port/db); connects on first use."""
    return redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)


def shared_call(call: Callable[..., T], *args: object, **kwargs: object) -> T:
    """``call(*args, **kwargs)``, with Redis failures as :class:`SharedStateError`."""
    try:
        return call(*args, **kwargs)
    except redis.RedisError as exc:
        raise SharedStateError(
            f"the shared state store (api.shared_state_url) failed: {exc}; check that "
            "Redis is up and reachable"
        ) from None
