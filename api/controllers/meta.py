"""Tasks, experiments, model versions, health, readiness and metrics."""

from __future__ import annotations

import os
from typing import Any

import msgspec
from celery.result import AsyncResult
from litestar import Controller, MediaType, Response, get
from litestar.datastructures import State
from litestar.exceptions import ServiceUnavailableException

from api.schemas import PathId, TaskStatus
from api.serving.shared import shared_call

WRITE_QUEUES = ("encode", "train")  # what POST .../slices and POST /v1/events send to


class TasksController(Controller):
    path = "/v1/tasks"
    tags = ["tasks"]

    @get("/{task_id:str}", operation_id="getTask", sync_to_thread=True)
    def get_task(self, task_id: PathId, state: State) -> TaskStatus:
        """A queued task's state; ``PENDING`` also means unknown (Celery cannot tell them apart)."""
        result = AsyncResult(task_id, app=state.services.celery)
        status = TaskStatus(task_id=task_id, state=result.state)
        if result.state == "SUCCESS":
            status.result = result.result
        elif result.state == "FAILURE":
            status.error = f"{type(result.result).__name__}: {result.result}"
        return status


class MetaController(Controller):
    tags = ["meta"]

    @get("/v1/experiments", operation_id="getExperiments", sync_to_thread=True)
    def experiments(self, state: State) -> dict[str, Any]:
        """The experiments in force, and the error of the last failed reload if any."""
        watched = state.services.experiments
        watched.maybe_reload()
        return {
            "file": str(watched.path) if watched.path else None,
            "generation": watched.generation,
            "last_error": watched.last_error,
            "experiments": msgspec.to_builtins(watched.current)["experiments"],
        }

    @get("/v1/model", operation_id="getModel", sync_to_thread=True)
    def model(self, state: State) -> dict[str, Any]:
        """Served versions per ranker variant (warmup stage, sync lag) and the codebook."""
        services = state.services
        variants = {}
        for variant in sorted(services.experiments.ranker_variants()):
            server = services.models.get(variant)
            variants[variant] = msgspec.to_builtins(server.versions()) if server else None
        active = services.catalog.active_codebook()
        return {"codebook_version": active.version if active else None, "variants": variants}

    @get("/health", operation_id="health", sync_to_thread=False)
    def health(self) -> dict[str, Any]:
        """The process is up; ``pid`` tells which of ``serve --workers N``'s processes answered."""
        return {"status": "ok", "pid": os.getpid()}

    @get("/ready", operation_id="ready", sync_to_thread=True)
    def ready(self, state: State) -> dict[str, Any]:
        """503 until the catalog (and the replicas' shared store, if set) answers, a live
        worker consumes each queue the write routes feed, and the default ranker variant
        has a model. Writes are still accepted meanwhile: the broker keeps them."""
        services = state.services
        try:
            services.catalog.active_codebook()
            unserved = services.heartbeats.unserved(WRITE_QUEUES)
        except Exception as exc:  # any database failure means not ready
            raise ServiceUnavailableException(detail=f"catalog unreachable: {exc}") from None
        if services.shared_state is not None:
            shared_call(services.shared_state.ping)  # a failure answers 503
        if unserved is not None:
            raise ServiceUnavailableException(detail=unserved)
        variant = services.settings.ranker.variant
        if services.models.get(variant) is None:
            raise ServiceUnavailableException(detail=f"ranker variant {variant!r} has no model yet")
        return {"status": "ready"}

    @get("/metrics", operation_id="metrics", sync_to_thread=True, include_in_schema=False)
    def metrics(self, state: State) -> Response[bytes]:
        """Prometheus text format."""
        services = state.services
        metrics = services.metrics
        metrics.observe_servers(services.models.loaded())
        try:
            for queue, depth in services.queue_depths().items():
                metrics.queue_depth.labels(queue).set(depth)
        except Exception:  # the broker being down must not hide the other metrics
            pass
        metrics.encode_failures.set(services.catalog.count_slices("failed"))
        table = services.rooms.table()  # the in-memory cache, not a catalog read per scrape
        live = int(table.live.sum())
        metrics.rooms.labels("live").set(live)
        metrics.rooms.labels("ended").set(len(table.ids) - live)
        return Response(metrics.render(), media_type=MediaType.TEXT)
