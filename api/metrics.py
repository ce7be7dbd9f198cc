"""Prometheus metrics of one API process (its own registry, exposed at ``/metrics``).

Three kinds of values:

- counted as requests come (request latency and status, events accepted and
  duplicated): this process's counts since it started, as Prometheus counters are;
- read at scrape time from what every process shares (:meth:`Metrics.observe_servers`,
  :meth:`Metrics.observe_services`): the served models, queue depths, the catalog
  (failed slices, the event log's head, the active codebook, live workers), so every
  API process reports the same values for these, and ``max()`` over processes is
  the way to aggregate them;
- the process itself (CPU, memory, open files, Python version).

``lucidrec_encode_failures`` is a counter read from the catalog: the slices stored
as failed are never deleted, so their count only grows, counts every encode worker's
failures, and survives worker restarts. The workers' own metrics (task outcomes,
frames, training) are in :mod:`workers.metrics`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from ranker import RankerServer
from workers.celery_app import QUEUES

if TYPE_CHECKING:
    from api.services import Services

logger = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
# warmup stages as numbers: the item-ID token always on (hybrid, id_only), on, ramping out,
# removed; never (lucid_only)
STAGES = {"always": 0, "id_on": 1, "id_ramp": 2, "id_removed": 3, "never": 4}


class ReadCounter(Collector):
    """A counter whose total is read from elsewhere (the catalog) rather than counted here."""

    def __init__(self, name: str, documentation: str, registry: CollectorRegistry) -> None:
        self.name, self.documentation = name, documentation
        self.value: float | None = None
        registry.register(self)

    def set(self, value: float) -> None:
        self.value = float(value)

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self.name, self.documentation)
        if self.value is not None:
            family.add_metric([], self.value)
        yield family


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.latency = Histogram(
            "lucidrec_request_seconds",
            "Request latency by route and variant",
            ["route", "variant"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.requests = Counter(
            "lucidrec_requests",
            "Requests by route and status",
            ["route", "status"],
            registry=self.registry,
        )
        self.events_accepted = Counter(
            "lucidrec_events_accepted",
            "Events accepted by POST /v1/events: new, appended to the event log",
            registry=self.registry,
        )
        self.events_duplicates = Counter(
            "lucidrec_events_duplicates",
            "Events acknowledged but skipped by POST /v1/events (their event_id was seen)",
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "lucidrec_queue_depth", "Messages waiting per queue", ["queue"], registry=self.registry
        )
        self.sync_lag = Gauge(
            "lucidrec_sync_lag_seconds",
            "Seconds the served model has been behind the newest file the trainer published "
            "(0 once applied, so 0 on an idle system)",
            ["variant"],
            registry=self.registry,
        )
        self.model = Info(
            "lucidrec_served_model",
            "The served model of each variant: the trainer run and the snapshot it started from",
            ["variant"],
            registry=self.registry,
        )
        self.model_step = Gauge(
            "lucidrec_served_model_step",
            "The training step of the served model",
            ["variant"],
            registry=self.registry,
        )
        self.model_published = Gauge(
            "lucidrec_served_model_published_timestamp_seconds",
            "When the trainer published the newest update the served model applied",
            ["variant"],
            registry=self.registry,
        )
        self.codebook = Info(
            "lucidrec_codebook",
            "The active codebook version ('' while none)",
            registry=self.registry,
        )
        self.table_rows = Gauge(
            "lucidrec_table_rows",
            "Rows of the served model's tables",
            ["variant", "table"],
            registry=self.registry,
        )
        self.warmup_stage = Gauge(
            "lucidrec_warmup_stage",
            "Item-ID warmup: 0 always, 1 on, 2 ramp, 3 removed, 4 never",
            ["variant"],
            registry=self.registry,
        )
        self.item_drop = Gauge(
            "lucidrec_item_id_drop_probability",
            "Probability the item-ID token is dropped",
            ["variant"],
            registry=self.registry,
        )
        self.encode_failures = ReadCounter(
            "lucidrec_encode_failures",
            "Slices that failed to encode, stored with a reason (read from the catalog)",
            self.registry,
        )
        self.log_head = Gauge(
            "lucidrec_event_log_head",
            "The newest event log position (read from the catalog)",
            registry=self.registry,
        )
        self.live_workers = Gauge(
            "lucidrec_live_workers",
            "Live workers consuming each queue (their heartbeats in the catalog)",
            ["queue"],
            registry=self.registry,
        )
        self.rooms = Gauge("lucidrec_rooms", "Rooms by status", ["status"], registry=self.registry)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)

    def count_events(self, accepted: int, duplicates: int) -> None:
        """What one ``POST /v1/events`` did."""
        self.events_accepted.inc(accepted)
        self.events_duplicates.inc(duplicates)

    def observe_servers(self, servers: dict[str, RankerServer]) -> None:
        for variant, server in servers.items():
            versions = server.versions()
            self.model.labels(variant).info(
                {"run": versions.run, "snapshot": str(versions.snapshot)}
            )
            self.model_step.labels(variant).set(versions.step)
            self.model_published.labels(variant).set(versions.published_at)
            self.warmup_stage.labels(variant).set(STAGES.get(versions.stage, -1))
            self.item_drop.labels(variant).set(versions.item_drop_prob)
            for table, stats in server.core.stats()["tables"].items():  # type: ignore[union-attr]
                self.table_rows.labels(variant, table).set(stats["rows"])

    def observe_services(self, services: Services) -> None:
        """Sync lag, and what the catalog holds (failed slices, the log's head, the active
        codebook, live workers). A catalog that does not answer keeps the last values, so
        the other metrics still show."""
        for variant, lag in services.models.lags().items():
            self.sync_lag.labels(variant).set(lag)
        catalog = services.catalog
        try:
            self.encode_failures.set(catalog.count_slices("failed"))
            self.log_head.set(catalog.log_head())
            active = catalog.active_codebook()
            self.codebook.info({"version": active.version if active else ""})
            now, beats = time.time(), services.heartbeats.beats()
            for queue in QUEUES:
                live = sum(1 for b in beats if queue in b.queues and b.live(now))
                self.live_workers.labels(queue).set(live)
        except Exception:
            logger.warning("metrics: the catalog did not answer", exc_info=True)

    def render(self) -> bytes:
        return generate_latest(self.registry)
