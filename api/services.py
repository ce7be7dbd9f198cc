"""What the API's handlers share, built once per process in the app's lifespan.

A background thread refreshes the room cache, the served models (and, for API
replicas, counts the other replicas' events from the shared engagement stream)
every half ``api.refresh_interval_s``, so a request finds them fresh and never
pays for a catalog query, a directory scan or a stream read itself; should the
thread fall behind, a request that finds a refresh due still does it (the
caches' own schedule).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import anyio
import torch

from api.experiments import Assigner
from api.metrics import Metrics
from api.serving.pipeline import RankPipeline
from api.serving.replays import MemoryReplays, RedisReplays, Replays
from api.serving.retrieval import Retriever
from api.serving.rooms import RoomCache
from api.serving.servers import ServedModels
from api.serving.session import Session, SessionState
from api.serving.shared import connect
from api.serving.shared_session import RedisSessionState
from configs import Settings, WatchedExperiments
from workers.catalog import Catalog
from workers.celery_app import QUEUES, create_celery
from workers.heartbeats import Heartbeats

logger = logging.getLogger(__name__)


class Services:
    def __init__(self, settings: Settings) -> None:
        api = settings.api
        torch.set_num_threads(api.torch_threads)
        self.settings = settings
        self.catalog = Catalog(settings.catalog.url)
        self.celery = create_celery(settings)
        self.heartbeats = Heartbeats(settings.catalog.url)  # which queues live workers consume
        self.experiments = WatchedExperiments(settings.experiments_file, settings)
        self.assign = Assigner(self.experiments)
        self.rooms = RoomCache(self.catalog, settings.ranker.lucid.levels, api.refresh_interval_s)
        self.models = ServedModels(Path(settings.model_store) / "ranker", api.refresh_interval_s)
        self.session: Session
        replays: Replays
        # what the background thread keeps fresh
        self._refreshes = [self.rooms.refresh, self.models.refresh_all]
        self.shared_state = connect(api.shared_state_url) if api.shared_state_url else None
        if self.shared_state is not None:  # API replicas: a user's events reach every one
            shared = RedisSessionState(self.shared_state, settings.ranker, api.refresh_interval_s)
            self._refreshes.append(shared.catch_up)
            self.session = shared
            replays = RedisReplays(self.shared_state, api.replay_ttl_s, api.replay_cache_bytes)
        else:
            self.session = SessionState(settings.ranker)
            replays = MemoryReplays(api.replay_ttl_s, api.replay_cache_bytes)
        self.pipeline = RankPipeline(
            self.rooms,
            self.models,
            self.session,
            Retriever(api.retrieve_nearest, api.retrieve_freshest),
            replays,
            new_room_age_s=api.new_room_age_s,
        )
        self.metrics = Metrics()
        self.rank_lanes = anyio.CapacityLimiter(api.rank_lanes)
        self._stop = threading.Event()
        self._refresher: threading.Thread | None = None

    def start_refresher(self) -> None:
        """Keep rooms and models fresh off the request path (see the module docstring)."""
        self._refresher = threading.Thread(target=self._refresh_loop, name="refresher", daemon=True)
        self._refresher.start()

    def _refresh_loop(self) -> None:
        while not self._stop.wait(self.settings.api.refresh_interval_s / 2):
            try:
                for refresh in self._refreshes:
                    refresh()
            except Exception:  # a catalog outage: log, keep serving, try again next round
                logger.exception("background refresh failed; serving what is loaded")

    def queue_depths(self) -> dict[str, int]:
        """Messages waiting in each queue, as the broker counts them."""
        depths = {}
        with self.celery.connection_for_read() as conn:
            channel = conn.default_channel
            for queue in QUEUES:
                depths[queue] = int(channel.queue_declare(queue=queue, passive=True).message_count)
        return depths

    def close(self) -> None:
        self._stop.set()
        if self._refresher is not None:
            self._refresher.join(timeout=10)
        self.heartbeats.close()
        self.catalog.close()
