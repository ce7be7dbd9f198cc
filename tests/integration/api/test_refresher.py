"""The background refresher: new rooms reach the serving cache with no request asking."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from api.services import Services
from configs import load_settings
from tests.integration.api.conftest import api_env, wait_until
from workers.catalog import Catalog, SliceRecord


def test_rooms_stored_after_start_are_cached_before_any_request(tmp_path: Path) -> None:
    env = api_env(tmp_path)
    env.pop("LUCIDREC_EXPERIMENTS_FILE")
    settings = load_settings(env=env)
    services = Services(settings)
    services.rooms.refresh()  # what the cache holds at start: nothing
    services.start_refresher()
    catalog = Catalog(settings.catalog.url)
    try:
        vector = np.ones(8, dtype=np.float32) / np.sqrt(8)
        catalog.store_encoded([SliceRecord("s0", "room-late", time.time(), vector)], None)
        # read the built table directly: RoomCache.table() would refresh by itself
        wait_until(lambda: "room-late" in services.rooms._table.index, timeout=10)
    finally:
        catalog.close()
        services.close()
    assert services._refresher is not None and not services._refresher.is_alive()
