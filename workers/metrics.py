"""Prometheus metrics of the train worker (its own registry), served on ``workers.metrics_port``.

The trainer is the only process that knows how far each variant has trained,
what it holds parked and what it dropped, so it serves these itself; the API's
``/metrics`` (:mod:`api.metrics`) covers serving. Gauges are set from the
catalog after each chunk, so they are right after a restart too; counters count
from the process's start, as Prometheus counters do.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server


class TrainMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.parked = Gauge(
            "lucidrec_parked_events",
            "Events waiting for their room's codes",
            ["variant"],
            registry=self.registry,
        )
        self.parked_dropped = Counter(
            "lucidrec_parked_dropped",
            "Parked events dropped past a bound (workers.parked_max_events or _age_s)",
            ["variant", "bound"],
            registry=self.registry,
        )
        self.dead_letters = Counter(
            "lucidrec_dead_letters",
            "Logged events the trainer could not train (kept in the dead_letters table)",
            ["variant"],
            registry=self.registry,
        )
        self.log_position = Gauge(
            "lucidrec_event_log_position",
            "The event log position each variant has trained up to",
            ["variant"],
            registry=self.registry,
        )
        self.log_head = Gauge(
            "lucidrec_event_log_head", "The newest event log position", registry=self.registry
        )

    def serve(self, port: int) -> None:
        """Serve ``/metrics`` on ``port`` from a background thread."""
        start_http_server(port, registry=self.registry)
