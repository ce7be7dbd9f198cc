"""The OpenAPI schema as a client is generated from, and the docs pages, served offline.

- Every operation has a summary, a description (its handler's docstring) and examples
  of its bodies; its errors are declared as the body they are answered with, the RFC
  9457 problem of :class:`api.schemas.Problem` (``application/problem+json``), not
  Litestar's default ``{status_code, detail}``. Controllers declare theirs with
  :func:`problems`, :func:`success` and :func:`request_example`.
- What the types cannot say is added once the schema is built (:func:`complete`):
  each component's description (its Struct's docstring), the label keys of an event,
  and the deployment's context features (``ranker.context``) with their ranges.
- Swagger UI (``/schema/swagger``) and ReDoc (``/schema``, ``/schema/redoc``) load
  their scripts, styles and icon from ``/schema/assets/``, files of the
  ``openapi-ui-bundles`` package: Litestar's defaults fetch them from CDNs, and the
  pages rendered blank offline. The UIs Litestar can only serve from a CDN (Stoplight
  Elements, RapiDoc) are not served.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any

from litestar import Router, get
from litestar.datastructures import CacheControlHeader
from litestar.exceptions import NotFoundException
from litestar.openapi import OpenAPIConfig, ResponseSpec
from litestar.openapi.plugins import (
    JsonRenderPlugin,
    RedocRenderPlugin,
    SwaggerRenderPlugin,
    YamlRenderPlugin,
)
from litestar.openapi.spec import (
    BaseSchemaObject,
    Components,
    Example,
    OpenAPI,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Reference,
    RequestBody,
    Schema,
    SecurityScheme,
)
from litestar.params import FromPath
from litestar.response import File
from openapi_ui_bundles import redoc, swagger_ui

from api import schemas
from api.schemas import LABEL_DOCS, Problem
from configs import Settings
from workers.messages import EVENT_LABELS

SCHEMA_PATH = "/schema"
ASSETS_PATH = f"{SCHEMA_PATH}/assets"
PROBLEM_MEDIA_TYPE = "application/problem+json"
# the name write routes give in ``security``: Authorization: Bearer <api key>
API_KEY = "apiKey"

# the files the docs pages load, by name: nothing else of the bundles is served
# (their index.html pages point at a demo schema on the internet)
ASSETS: dict[str, tuple[Path, str]] = {
    "swagger-ui-bundle.js": (swagger_ui.static_path, "text/javascript"),
    "swagger-ui-standalone-preset.js": (swagger_ui.static_path, "text/javascript"),
    "swagger-ui.css": (swagger_ui.static_path, "text/css"),
    "favicon-32x32.png": (swagger_ui.static_path, "image/png"),
    "redoc.standalone.js": (redoc.static_path, "text/javascript"),
}
FAVICON = f"<link rel='icon' type='image/png' href='{ASSETS_PATH}/favicon-32x32.png'>"

DESCRIPTION = """\
Ranks live rooms for a user from their semantic codes (LUCIDs), and takes the rooms'
slices and the users' events that the codes and the ranker learn from.

- **Ids** (users, rooms, slices, events, requests) have 1 to 128 characters among
  letters, digits and `_ . : @ + = | ~ -`, the first a letter, a digit or `_`.
- **Auth**: with API keys configured, the write routes (posting slices and events,
  ending rooms) need `Authorization: Bearer <api key>`; reads and ranking need none.
- **Errors** are RFC 9457 problem bodies (`application/problem+json`): `status`,
  `title`, `detail`, and for a 400 `extra`, each problem by key. Bad input is never
  a 5xx.
- Every response carries an `X-Request-ID`: the client's, if it is an id, else a new one.
"""

# what each error status means on this API, and an example of its body's detail
SHARED_STORE_DOWN = (
    "the shared state store (api.shared_state_url) failed: Connection refused; check that "
    "Redis is up and reachable"
)
PROBLEMS: dict[int, tuple[str, str]] = {
    400: (
        "The request does not validate (types, sizes, ids, unknown fields, malformed or "
        "too deeply nested JSON, an event time outside the window, an unknown context "
        "feature or a value past its size); `extra` lists each problem by key.",
        "Validation failed for POST /v1/rank",
    ),
    401: (
        "A write route without a valid API key (`Authorization: Bearer <api key>`).",
        "this route needs 'Authorization: Bearer <api key>'",
    ),
    404: ("No such resource.", "no room 'r404': post its slices first"),
    409: (
        "The request_id names an earlier, different request.",
        "request_id 'req-7' was used for a different request; send a new request without "
        "request_id to rank again",
    ),
    413: (
        "The body is larger than api.max_body_bytes (16 MiB by default).",
        "Request Entity Too Large",
    ),
    503: (
        "Not available yet or for now: a retry may succeed (no model for the ranker "
        "variant yet, the replicas' shared store unreachable).",
        "ranker variant 'staged' has no model yet",
    ),
}
FIELD_PROBLEM = {"message": "Expected `int` <= 500", "key": "k", "source": "body"}


@dataclass
class Verbatim(BaseSchemaObject):
    """An example's value, written into the schema as it is: Litestar drops the ``None``
    values of dicts when it serializes the schema, which would take the nulls out of
    examples (``"ended_at": null``), leaving required fields missing."""

    value: Any

    def to_schema(self) -> Any:  # type: ignore[override]
        return self.value


def problem_example(status: int, detail: str) -> dict[str, Any]:
    """The body of a ``status`` error with ``detail``, as :func:`api.app.problem` makes it."""
    body: dict[str, Any] = {
        "status": status,
        "title": HTTPStatus(status).phrase,
        "detail": detail,
    }
    if status == 400:
        body["extra"] = [FIELD_PROBLEM]
    return body


def problems(*statuses: int, details: Mapping[int, str] | None = None) -> dict[int, ResponseSpec]:
    """The error responses ``statuses`` as :class:`Problem` bodies; ``details`` gives this
    route's ``detail`` in a status's example."""
    details = details or {}
    responses = {}
    for status in statuses:
        description, detail = PROBLEMS[status]
        detail = details.get(status, detail)
        responses[status] = ResponseSpec(
            data_container=Problem,
            description=description,
            media_type=PROBLEM_MEDIA_TYPE,
            generate_examples=False,
            examples=[
                Example(
                    summary=HTTPStatus(status).phrase,
                    value=Verbatim(problem_example(status, detail)),
                )
            ],
        )
    return responses


def success(
    status: int, data_container: Any, example: Any, description: str
) -> dict[int, ResponseSpec]:
    """The success response ``status``, its body described by ``data_container`` and shown
    by ``example``: Litestar's own success response has no example."""
    return {
        status: ResponseSpec(
            data_container=data_container,
            description=description,
            generate_examples=False,
            examples=[Example(summary=HTTPStatus(status).phrase, value=Verbatim(example))],
        )
    }


def request_example(summary: str, value: Any) -> type[Operation]:
    """An :class:`Operation` class (a handler's ``operation_class``) that shows ``value``
    as the example of the request body."""

    @dataclass
    class WithRequestExample(Operation):
        def __post_init__(self) -> None:
            if isinstance(self.request_body, RequestBody):
                for media in self.request_body.content.values():
                    media.examples = {"example": Example(summary=summary, value=Verbatim(value))}

    return WithRequestExample


@get(
    "/assets/{name:str}",
    include_in_schema=False,
    sync_to_thread=False,
    cache_control=CacheControlHeader(max_age=24 * 3600),
)
def docs_asset(name: FromPath[str]) -> File:
    """A file of the docs pages (Swagger UI, ReDoc), from the installed bundles."""
    found = ASSETS.get(name)
    if found is None:
        raise NotFoundException(detail=f"no docs asset {name!r}")
    folder, media_type = found
    return File(
        path=folder / name, filename=name, media_type=media_type, content_disposition_type="inline"
    )


def openapi_config(version: str) -> OpenAPIConfig:
    """The schema at ``/schema/openapi.json`` (and ``.yaml``), ReDoc at ``/schema`` and
    ``/schema/redoc``, Swagger UI at ``/schema/swagger``, all without a CDN."""
    return OpenAPIConfig(
        title="lucidrec",
        version=version,
        description=DESCRIPTION,
        use_handler_docstrings=True,
        components=Components(
            security_schemes={
                API_KEY: SecurityScheme(
                    type="http",
                    scheme="bearer",
                    description="One of api.api_keys; needed by the write routes when keys "
                    "are configured.",
                )
            }
        ),
        openapi_router=Router(SCHEMA_PATH, route_handlers=[docs_asset], include_in_schema=False),
        render_plugins=[
            RedocRenderPlugin(
                path=["/redoc", "/"],
                js_url=f"{ASSETS_PATH}/redoc.standalone.js",
                google_fonts=False,
                favicon=FAVICON,
            ),
            SwaggerRenderPlugin(
                path="/swagger",
                js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
                css_url=f"{ASSETS_PATH}/swagger-ui.css",
                standalone_preset_js_url=f"{ASSETS_PATH}/swagger-ui-standalone-preset.js",
                favicon=FAVICON,
            ),
            JsonRenderPlugin(path="/openapi.json"),
            YamlRenderPlugin(path=["/openapi.yaml", "/openapi.yml"]),
        ],
    )


def context_properties(settings: Settings) -> dict[str, Schema]:
    """The deployment's context features (``ranker.context``), each with its range."""
    return {
        feature.name: Schema(
            type=OpenAPIType.INTEGER,
            minimum=0,
            maximum=feature.size - 1,
            description=f"Context feature {feature.name!r}: 0 to {feature.size - 1}.",
        )
        for feature in settings.ranker.context
    }


def label_properties() -> dict[str, Schema]:
    """The labels an event may carry (``workers.messages.EVENT_LABELS``)."""
    return {
        name: Schema(type=OpenAPIType.NUMBER, description=LABEL_DOCS[name]) for name in EVENT_LABELS
    }


# /ready's docs, until its handler declares them itself (only what is missing is added)
READY_EXAMPLE = {"status": "ready"}
READY_NOT_READY = (
    "Not ready: `detail` names the first thing missing (the catalog or the shared store "
    "unreachable, no live worker on a queue the write routes feed, no codebook, no model "
    "for the default ranker variant). Writes are still accepted meanwhile."
)


def describe_ready(operation: Operation) -> None:
    """Add to ``/ready``'s operation the example and the 503 it lacks."""
    responses = operation.responses if operation.responses is not None else {}
    ok = responses.get("200")
    if isinstance(ok, OpenAPIResponse) and ok.content:
        for media in ok.content.values():
            if media.examples is None:
                media.examples = {"ready": Example(summary="Ready", value=Verbatim(READY_EXAMPLE))}
    if "503" not in responses:
        example = problem_example(503, "no live worker consumes the train queue")
        responses["503"] = OpenAPIResponse(
            description=READY_NOT_READY,
            content={
                PROBLEM_MEDIA_TYPE: OpenAPIMediaType(
                    schema=Reference(ref=f"#/components/schemas/{Problem.__name__}"),
                    examples={"not-ready": Example(summary="Not ready", value=Verbatim(example))},
                )
            },
        )
    operation.responses = responses


def unwrap_single_one_of(schema: Schema) -> None:
    """``{oneOf: [X], description}`` (a field that may be absent: msgspec's UNSET) as ``X``
    with the description: what a client generator reads as a plain optional field."""
    if schema.one_of is not None and len(schema.one_of) == 1:
        only = schema.one_of[0]
        if isinstance(only, Schema):
            schema.one_of = None
            for name, value in vars(only).items():
                if value is not None and getattr(schema, name) is None:
                    setattr(schema, name, value)


def complete(openapi: OpenAPI, settings: Settings) -> OpenAPI:
    """Add to the built schema what the types cannot say; returns it, changed in place."""
    components = openapi.components.schemas or {}
    for name, schema in components.items():
        struct = getattr(schemas, name, None)
        if schema.description is None and isinstance(struct, type) and struct.__doc__:
            schema.description = inspect.cleandoc(struct.__doc__)
        for field in (schema.properties or {}).values():
            if isinstance(field, Schema):
                unwrap_single_one_of(field)
    context = context_properties(settings)
    for name in ("RankBody", "EventIn"):
        field = components[name].properties["context"]  # type: ignore[index]
        field.properties = dict(context)  # type: ignore[union-attr]
        field.additional_properties = False  # type: ignore[union-attr]
    labels = components["EventIn"].properties["labels"]  # type: ignore[index]
    labels.properties = label_properties()  # type: ignore[union-attr]
    labels.additional_properties = False  # type: ignore[union-attr]
    for path in (openapi.paths or {}).values():
        if path.get is not None and path.get.operation_id == "ready":
            describe_ready(path.get)
    return openapi
