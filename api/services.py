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
import time
from pathlib import Path

import anyio
import torch

from api.experiments import Assigner
from api.metrics import Metrics
from api.serving.pipeline import RankPipeline, no_model_yet
from api.serving.replays import MemoryReplays, RedisReplays, Replays
from api.serving.retrieval import Retriever
from api.serving.rooms import RoomCache
from api.serving.servers import ServedModels
from api.serving.session import Session, SessionState
from api.serving.shared import connect
from api.serving.shared_session import RedisSessionState
from configs import Settings, WatchedExperiments
from encoder.towers.description import describe, summary
from workers.catalog import Catalog
from workers.celery_app import QUEUES, create_celery
from workers.codebooks import first_codebook_slices
from workers.heartbeats import Heartbeats
from workers.tasks.maintenance import last_first_codebook_error

logger = logging.getLogger(__name__)


class Services:
    def __init__(self, settings: Settings) -> None:
        api = settings.api
        torch.set_num_threads(api.torch_threads)
        self.settings = settings
        # the towers encode workers load, from the same settings (GET /v1/model shows them)
        self.towers = describe(settings.encoder)
        logger.info("%s; what encode workers with these settings load", summary(self.towers))
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
            no_model=self.no_model,
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

    def no_codebook(self) -> str | None:
        """With no codebook active (so no room has codes, and ranking returns nothing): what
        is missing and how to supply it; None once one is active. Reads the catalog."""
        if self.catalog.active_codebook() is not None:
            return None
        settings = self.settings
        need, codes = first_codebook_slices(settings), settings.quantizer.codes
        have = self.catalog.count_slices("encoded")
        if have < need:
            now = (
                "; or fit one now: lucidrec quantizer retrain --from-catalog"
                if have >= codes
                else ""
            )
            return (
                f"no codebook yet, so no room has codes: {have} of {need} slices encoded; "
                f"post slices to /v1/rooms/{{room_id}}/slices — the first codebook is fitted "
                f"automatically at {need}{now}"
            )
        detail = (
            f"no codebook yet, so no room has codes: {have} slices encoded (the first "
            f"codebook needs {need}); maintenance fits it within "
            f"workers.maintenance_interval_s ({settings.workers.maintenance_interval_s} s) if "
            "a worker consumes the maintenance queue with --beat, or run: lucidrec quantizer "
            "retrain --from-catalog"
        )
        failed = last_first_codebook_error(self.catalog)
        if failed is not None:
            detail += f"; the last automatic fit failed {time.time() - failed[0]:.0f} s ago: "
            detail += failed[1]
        return detail

    def no_model(self, variant: str) -> str:
        """Why ``variant`` has no model to serve: no live train worker, or none has written the
        variant's first snapshot yet."""
        try:
            unserved = self.heartbeats.unserved(("train",))
        except Exception:  # the catalog away: say what is known without it
            return no_model_yet(variant)
        if unserved is not None:
            return (
                f"ranker variant {variant!r} has no model yet: {unserved} (serve starts one "
                "unless --no-worker; elsewhere: lucidrec worker --queues train)"
            )
        return (
            f"ranker variant {variant!r} has no model yet: the train worker writes its first "
            "snapshot (no events needed) when it starts, and for a variant new to the "
            "experiments at its next event or maintenance round; it has not yet, so retry "
            "shortly, and if this lasts read the train worker's log"
        )

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
