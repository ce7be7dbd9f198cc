"""The settings schema: one msgspec Struct per package, nested in :class:`Settings`.

Every field has a default that is the embedded default profile, so ``Settings()``
is a working configuration. Constraints live in the types (``Meta``), so a bad
value is refused when the settings are loaded, never deep inside a worker.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from configs.base import NonNegativeInt, PositiveInt, Section, Unit
from configs.encoder import EncoderSettings
from configs.ranker import RankerSettings


class QuantizerSettings(Section):
    """RQ-KMeans: L levels of N centroids, fitted with faiss k-means.

    A codebook takes its dimension from the vectors it is fitted on (the
    encoder's ``out_dim`` in the service), and every later input must match it.
    """

    levels: Annotated[int, Meta(ge=1, le=16)] = 4
    codes: Annotated[int, Meta(ge=2, le=65536)] = 64
    seed: NonNegativeInt = 0
    niter: PositiveInt = 25
    # "kmeans++": our own k-means++ seeding on the training sample, then faiss k-means;
    # "random": faiss's random seeding. Either way the best of ``nredo`` runs is kept.
    init: Literal["kmeans++", "random"] = "kmeans++"
    nredo: PositiveInt = 3
    # k-means at each level sees at most codes * max_points_per_centroid residuals.
    max_points_per_centroid: PositiveInt = 1024
    beam_width: PositiveInt = 1
    batch_size: Annotated[int, Meta(ge=256)] = 65536
    # "auto": GPU faiss when faiss.get_num_gpus() > 0; "cpu": never.
    device: Literal["auto", "cpu"] = "auto"


class ServingSettings(Section):
    """Per-request knobs an experiment variant may override."""

    task_weights: dict[str, Annotated[float, Meta(ge=0.0)]] = msgspec.field(
        default_factory=lambda: {"click": 1.0, "quality_watch": 1.0, "like": 0.5, "follow": 0.5}
    )
    mmr_lambda: Unit = 0.8
    exploration: bool = True
    exploration_slots: NonNegativeInt = 2


class CatalogSettings(Section):
    """Where rooms, slices and codebooks are recorded (SQLAlchemy URL)."""

    url: str = "sqlite:///{data_dir}/catalog.db"


class WorkerSettings(Section):
    """Celery broker and result backend, task policy, and what the tasks need.

    Embedded default: SQLite through kombu's SQLAlchemy transport (``sqla+sqlite://``)
    and a ``db+sqlite`` result backend. Scale-out: ``redis://`` (or ``amqp://``).
    """

    broker_url: str = "sqla+sqlite:///{data_dir}/broker.db"
    result_backend: str = "db+sqlite:///{data_dir}/results.db"
    concurrency: PositiveInt = 1
    # how often an idle worker polls a database broker (kombu's default is 1 s)
    poll_interval_s: Annotated[float, Meta(gt=0.0, le=10.0)] = 0.05
    task_soft_time_limit_s: PositiveInt = 300
    task_time_limit_s: PositiveInt = 360
    # a task fetched but not acknowledged within this time (its worker died) is
    # delivered again; keep it above task_time_limit_s
    redelivery_timeout_s: PositiveInt = 900
    max_retries: NonNegativeInt = 5
    retry_backoff_max_s: PositiveInt = 60
    # frames given as paths must resolve inside this folder
    media_root: str = "{data_dir}/media"
    # a slice whose text fields together exceed this many characters is refused
    max_text_chars: PositiveInt = 100_000
    max_frames: PositiveInt = 16
    max_frame_bytes: PositiveInt = 10_000_000
    # maintenance: end rooms with no slice for this long; run every interval
    room_idle_s: PositiveInt = 600
    # the train worker's lease; a standby takes over this long after the holder dies
    trainer_lease_s: Annotated[float, Meta(gt=0.0)] = 30.0
    maintenance_interval_s: PositiveInt = 30
    # maintenance fits the first codebook by itself once this many slices are encoded
    # (and none is active); None: quantizer.codes, the fewest vectors the fit accepts
    bootstrap_min_slices: PositiveInt | None = None
    recode_batch: PositiveInt = 5000
    # maintenance forgets idempotency ids (events, slices) older than this
    processed_retention_s: PositiveInt = 7 * 24 * 3600
    # the trainer takes the event log this many events at a time (one catalog read, one
    # train call per variant; a snapshot covers whole chunks)
    train_chunk_events: PositiveInt = 2048
    # events on rooms without codes wait (per ranker variant) for the codes, at most this
    # many (the oldest beyond are dropped) and this long after they were accepted
    parked_max_events: PositiveInt = 10_000
    parked_max_age_s: PositiveInt = 3600
    # the train worker serves its Prometheus metrics (parked and dropped events, dead
    # letters, log lag) on this port; None: not served
    metrics_port: Annotated[int, Meta(ge=1, le=65535)] | None = None


class ApiSettings(Section):
    """The HTTP server, its limits, and the serving pipeline's sizes."""

    host: str = "127.0.0.1"
    port: Annotated[int, Meta(ge=1, le=65535)] = 8000
    # bearer keys for the write routes (events, slices, ending rooms); empty: no auth
    api_keys: list[str] = msgspec.field(default_factory=list)
    max_body_bytes: PositiveInt = 16 * 1024 * 1024
    # the same request_id returns the same list for this long
    replay_ttl_s: PositiveInt = 600
    # kept responses take at most this many bytes (per process, or in the shared store for
    # all replicas); the oldest go first. 64 MiB keeps ~14k default (k=20, ~4.8 KB)
    # responses; a count alone let k=500 responses (~116 KB each) take gigabytes
    replay_cache_bytes: PositiveInt = 64 * 1024 * 1024
    # an event whose ts lies further from the API's clock is refused (400). The past
    # window plus the future one must fit in workers.processed_retention_s: a retry of an
    # event the idempotency ledger has forgotten would be trained twice. Past: 6 days, the
    # most whole days inside the ledger's 7; future: 5 minutes of client clock skew, while
    # a unit error (milliseconds) or a broken clock lands years away
    event_ts_past_s: PositiveInt = 6 * 24 * 3600
    event_ts_future_s: NonNegativeInt = 300
    # where in-session state (histories, interests, exploration counts, replays) lives:
    # None keeps it in this process (one API process); a redis:// URL shares it
    # between API replicas, so any replica sees a user's events and replays
    shared_state_url: str | None = None
    # how often the in-memory room cache and the served models look for changes
    refresh_interval_s: Annotated[float, Meta(gt=0.0)] = 0.5
    # retrieval without candidates: nearest live rooms to the user's interest, plus the freshest
    retrieve_nearest: PositiveInt = 400
    retrieve_freshest: PositiveInt = 100
    # exploration: rooms younger than this compete for the exploration slots
    new_room_age_s: PositiveInt = 900
    # rank requests computed at once (threads); more wait in the event loop, which
    # meanwhile reads and writes other requests. Scoring holds the GIL between torch
    # ops, so more lanes than cores only make requests take turns mid-request.
    rank_lanes: PositiveInt = 1
    # torch's intra-op threads in the API process. Scoring runs in a worker thread,
    # where every op wakes a thread team of its own: with 2 threads a 1000-candidate
    # request took 18.8 ms in the server against 12.4 ms with 1 (bench/api.py's setup)
    torch_threads: PositiveInt = 1


class Settings(Section):
    """The whole service's settings; ``{data_dir}`` in any string expands at load time."""

    data_dir: str = ".lucidrec"
    model_store: str = "{data_dir}/models"
    experiments_file: str | None = None
    encoder: EncoderSettings = msgspec.field(default_factory=EncoderSettings)
    quantizer: QuantizerSettings = msgspec.field(default_factory=QuantizerSettings)
    ranker: RankerSettings = msgspec.field(default_factory=RankerSettings)
    serving: ServingSettings = msgspec.field(default_factory=ServingSettings)
    catalog: CatalogSettings = msgspec.field(default_factory=CatalogSettings)
    workers: WorkerSettings = msgspec.field(default_factory=WorkerSettings)
    api: ApiSettings = msgspec.field(default_factory=ApiSettings)

    def __post_init__(self) -> None:
        window = self.api.event_ts_past_s + self.api.event_ts_future_s
        if window > self.workers.processed_retention_s:
            raise ValueError(
                f"api.event_ts_past_s + api.event_ts_future_s ({window} s) must not exceed "
                f"workers.processed_retention_s ({self.workers.processed_retention_s} s): an "
                "event older than the idempotency ledger's memory could be a retry it has "
                "forgotten, and would be trained twice; shorten the window or keep ids longer"
            )
        for key in ("levels", "codes"):
            quantizer, ranker = getattr(self.quantizer, key), getattr(self.ranker.lucid, key)
            if quantizer != ranker:
                raise ValueError(
                    f"quantizer.{key} ({quantizer}) must equal ranker.lucid.{key} ({ranker}): "
                    "the ranker reads the codes the quantizer writes; set both to the same value"
                )
        floor = self.workers.bootstrap_min_slices
        if floor is not None and floor < self.quantizer.codes:
            raise ValueError(
                f"workers.bootstrap_min_slices ({floor}) must be at least quantizer.codes "
                f"({self.quantizer.codes}): the first codebook's fit needs one vector per "
                "code; raise it, or leave it unset for quantizer.codes"
            )
        if self.ranker.content_dim != self.encoder.out_dim:
            raise ValueError(
                f"ranker.content_dim ({self.ranker.content_dim}) must equal encoder.out_dim "
                f"({self.encoder.out_dim}): dense_content reads the encoder's room embeddings; "
                "set both to the same width"
            )
