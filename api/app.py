"""``create_app(settings)``: the Litestar app, its services loaded in the lifespan."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http import HTTPStatus

from litestar import Litestar
from litestar.exceptions import HTTPException
from litestar.logging import LoggingConfig
from litestar.plugins.problem_details import (
    ProblemDetailsConfig,
    ProblemDetailsException,
    ProblemDetailsPlugin,
)

from api.controllers.events import EventsController
from api.controllers.meta import MetaController, TasksController
from api.controllers.rank import RankController
from api.controllers.rooms import RoomsController
from api.openapi import complete, openapi_config
from api.security import request_id_middleware
from api.services import Services
from api.serving.shared import SharedStateError
from api.validation import JsonRequest
from configs import Settings, load_settings

# one log line: level, time, logger name (lucidrec.access for the access log), message
LOG_FORMAT = "%(levelname)s - %(asctime)s - %(name)s - %(message)s"


def problem(exc: HTTPException) -> ProblemDetailsException:
    """RFC 9457 body: the status phrase as title, our message as detail, field errors as extra."""
    return ProblemDetailsException(
        status_code=exc.status_code,
        title=HTTPStatus(exc.status_code).phrase,
        detail=exc.detail,
        extra=exc.extra,
        headers=exc.headers,
    )


def shared_state_problem(exc: SharedStateError) -> ProblemDetailsException:
    """503: the replicas' shared store is down; the request may succeed on a retry."""
    return problem(HTTPException(status_code=503, detail=str(exc)))


def create_app(settings: Settings) -> Litestar:
    """The API for ``settings``; services (catalog, models, caches) start with the app."""

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        services = Services(settings)
        services.experiments.install_sighup()
        services.start_refresher()
        app.state.services = services
        # What start-up built (modules, settings, caches) lives as long as the process:
        # out of the collector's sight, a full collection no longer walks ~280k
        # objects (137 ms on 2 cores, a stall for every request in flight).
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            services.close()

    app = Litestar(
        route_handlers=[
            RankController,
            EventsController,
            RoomsController,
            TasksController,
            MetaController,
        ],
        lifespan=[lifespan],
        middleware=[request_id_middleware],
        request_class=JsonRequest,
        plugins=[
            ProblemDetailsPlugin(
                ProblemDetailsConfig(
                    exception_to_problem_detail_map={
                        HTTPException: problem,
                        SharedStateError: shared_state_problem,
                    }
                )
            )
        ],
        request_max_body_size=settings.api.max_body_bytes,
        openapi_config=openapi_config(version="0.1.0"),
        logging_config=LoggingConfig(
            # Litestar's default format adds %(module)s, which named the access log
            # "security" (its module) beside its logger's name; the name says it all
            formatters={"standard": {"format": LOG_FORMAT}},
            loggers={"lucidrec.access": {"level": "INFO"}, "api": {"level": "INFO"}},
            log_exceptions="debug",
        ),
    )
    # built now, once: what the types cannot say (the deployment's context features,
    # the label keys, the components' descriptions) is added to the schema served
    complete(app.openapi_schema, settings)
    return app


def app_from_environment() -> Litestar:
    """The app for the settings of the environment: what each of ``serve --workers N``'s
    processes builds."""
    return create_app(load_settings())
