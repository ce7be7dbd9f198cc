"""Prometheus metrics of one API process (its own registry, exposed at ``/metrics``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from ranker import RankerServer

LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
# warmup stages as numbers: the item-ID token always on (hybrid, id_only), on, ramping out,
# removed; never (lucid_only)
STAGES = {"always": 0, "id_on": 1, "id_ramp": 2, "id_removed": 3, "never": 4}


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
        self.queue_depth = Gauge(
            "lucidrec_queue_depth", "Messages waiting per queue", ["queue"], registry=self.registry
        )
        self.sync_lag = Gauge(
            "lucidrec_sync_lag_seconds",
            "Seconds since the served model's newest update",
            ["variant"],
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
        self.encode_failures = Gauge(
            "lucidrec_encode_failures",
            "Slices that failed to encode (stored with a reason)",
            registry=self.registry,
        )
        self.rooms = Gauge("lucidrec_rooms", "Rooms by status", ["status"], registry=self.registry)

    def observe_servers(self, servers: dict[str, RankerServer]) -> None:
        for variant, server in servers.items():
            versions = server.versions()
            self.sync_lag.labels(variant).set(versions.lag_s)
            self.warmup_stage.labels(variant).set(STAGES.get(versions.stage, -1))
            self.item_drop.labels(variant).set(versions.item_drop_prob)
            for table, stats in server.core.stats()["tables"].items():  # type: ignore[union-attr]
                self.table_rows.labels(variant, table).set(stats["rows"])

    def render(self) -> bytes:
        return generate_latest(self.registry)
