"""What the API's handlers share, built once per process in the app's lifespan."""

from __future__ import annotations

from pathlib import Path

from api.experiments import Assigner
from api.metrics import Metrics
from api.serving.pipeline import RankPipeline
from api.serving.retrieval import Retriever
from api.serving.rooms import RoomCache
from api.serving.servers import ServedModels
from api.serving.session import SessionState
from configs import Settings, WatchedExperiments
from workers.catalog import Catalog
from workers.celery_app import QUEUES, create_celery


class Services:
    def __init__(self, settings: Settings) -> None:
        api = settings.api
        self.settings = settings
        self.catalog = Catalog(settings.catalog.url)
        self.celery = create_celery(settings)
        self.experiments = WatchedExperiments(settings.experiments_file, settings)
        self.assign = Assigner(self.experiments)
        self.rooms = RoomCache(self.catalog, settings.ranker.lucid.levels, api.refresh_interval_s)
        self.models = ServedModels(Path(settings.model_store) / "ranker", api.refresh_interval_s)
        self.session = SessionState(settings.ranker)
        self.pipeline = RankPipeline(
            self.rooms,
            self.models,
            self.session,
            Retriever(api.retrieve_nearest, api.retrieve_freshest),
            replay_ttl_s=api.replay_ttl_s,
            new_room_age_s=api.new_room_age_s,
        )
        self.metrics = Metrics()

    def queue_depths(self) -> dict[str, int]:
        """Messages waiting in each queue, as the broker counts them."""
        depths = {}
        with self.celery.connection_for_read() as conn:
            channel = conn.default_channel
            for queue in QUEUES:
                depths[queue] = int(channel.queue_declare(queue=queue, passive=True).message_count)
        return depths

    def close(self) -> None:
        self.catalog.close()
