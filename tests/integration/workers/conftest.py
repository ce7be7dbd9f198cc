"""Fixtures of the worker tests: each queue test runs over both brokers."""

from __future__ import annotations

import pytest


@pytest.fixture(params=["sqlite", "redis"])
def broker(request: pytest.FixtureRequest) -> str:
    """``sqlite`` (the embedded broker, made in each test's folder) or a private Redis URL."""
    return request.getfixturevalue("redis_url") if request.param == "redis" else "sqlite"
