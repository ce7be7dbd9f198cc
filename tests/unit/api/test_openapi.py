"""The OpenAPI schema a client is generated from, the docs pages served offline, and the
error bodies as declared.

The app is built without its lifespan (no catalog, models or broker): the schema and the
docs pages need none, and the error paths get stand-ins for the services they touch.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any
from unittest.mock import MagicMock

import anyio
import msgspec
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from api import schemas
from api.app import create_app
from api.experiments import Assignment
from api.schemas import Problem
from api.serving.pipeline import ModelNotReadyError, ReplayConflictError
from api.serving.shared import SharedStateError
from configs import Settings, load_settings
from configs.ranker import ContextFeature
from ranker import LABELS
from workers.messages import EVENT_LABELS

API_KEY = "k-openapi"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
PROBLEM_REF = "#/components/schemas/Problem"
DOC_PAGES = ("/schema", "/schema/swagger", "/schema/redoc")


def settings_for_tests(**env: str) -> Settings:
    return load_settings(
        "test",
        env={
            "LUCIDREC_API__API_KEYS": f"[{API_KEY}]",
            "LUCIDREC_API__MAX_BODY_BYTES": "4000",
            **env,
        },
    )


@pytest.fixture(scope="module")
def app() -> Litestar:
    return create_app(settings_for_tests())


@pytest.fixture(scope="module")
def client(app: Litestar) -> TestClient:
    return TestClient(app)


@pytest.fixture(scope="module")
def spec(client: TestClient) -> dict[str, Any]:
    response = client.get("/schema/openapi.json")
    assert response.status_code == 200
    return response.json()


def operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, item in spec["paths"].items()
        for method, operation in item.items()
    ]


def struct_of(ref: str) -> type[msgspec.Struct]:
    """The Struct a ``#/components/schemas/<Name>`` reference names."""
    return getattr(schemas, ref.rsplit("/", 1)[1])


# --- the schema ----------------------------------------------------------------------------


def test_every_operation_has_a_summary_a_description_and_examples(spec: dict[str, Any]) -> None:
    ops = operations(spec)
    assert len(ops) >= 10
    for method, path, operation in ops:
        where = f"{method} {path}"
        assert operation.get("summary"), where
        assert operation.get("description"), where
        body = operation.get("requestBody")
        if body is not None:
            for media in body["content"].values():
                assert media.get("examples"), f"{where}: request body without an example"
        successes = [r for status, r in operation["responses"].items() if status.startswith("2")]
        assert successes, where
        for response in successes:
            assert response.get("description"), where
            for media in response["content"].values():
                assert media.get("examples"), f"{where}: response without an example"


def test_every_component_and_every_property_is_described(spec: dict[str, Any]) -> None:
    components = spec["components"]["schemas"]
    assert {"RankBody", "RankResponse", "EventIn", "Problem", "FieldProblem"} <= set(components)
    for name, component in components.items():
        assert component.get("description"), name
        for prop, schema in component["properties"].items():
            assert schema.get("description"), f"{name}.{prop} has no description"


def test_errors_are_declared_as_the_problem_body_sent(spec: dict[str, Any]) -> None:
    problem = spec["components"]["schemas"]["Problem"]
    assert {"status", "title", "detail"} <= set(problem["required"])
    assert {"status", "title", "detail", "extra"} == set(problem["properties"])
    assert "status_code" not in str(spec)  # Litestar's default error schema, not what is sent
    declared = {}
    for method, path, operation in operations(spec):
        for status, response in operation["responses"].items():
            if status.startswith(("4", "5")):
                media = response["content"]
                assert set(media) == {"application/problem+json"}, f"{method} {path} {status}"
                assert media["application/problem+json"]["schema"] == {"$ref": PROBLEM_REF}
                declared.setdefault(operation["operationId"], set()).add(int(status))
    assert declared == {
        "rank": {400, 409, 413, 503},
        "postEvents": {400, 401, 413, 503},
        "postSlices": {400, 401, 413},
        "getRoom": {400, 404},
        "endRoom": {400, 401, 404},
        "getTask": {400},
        "ready": {503},
    }


def test_examples_are_bodies_the_api_takes_and_sends(spec: dict[str, Any]) -> None:
    """Each example decodes as its declared type: a client copying one gets no 400."""
    checked = 0
    for method, path, operation in operations(spec):
        bodies = [operation["requestBody"]] if "requestBody" in operation else []
        for response in [*bodies, *operation["responses"].values()]:
            for media in response.get("content", {}).values():
                ref = media["schema"].get("$ref")
                if ref is None:
                    continue
                for name, example in media["examples"].items():
                    try:
                        msgspec.convert(example["value"], struct_of(ref))
                    except msgspec.ValidationError as exc:
                        pytest.fail(f"{method} {path} example {name}: {exc}")
                    checked += 1
    assert checked >= 20


def test_the_label_keys_and_the_deployments_context_features_are_listed() -> None:
    settings = settings_for_tests()
    region = [ContextFeature(name="region", size=5), ContextFeature(name="hour", size=24)]
    ranker = msgspec.structs.replace(settings.ranker, context=region)
    spec = create_app(msgspec.structs.replace(settings, ranker=ranker)).openapi_schema.to_schema()
    components = spec["components"]["schemas"]
    labels = components["EventIn"]["properties"]["labels"]
    assert list(labels["properties"]) == list(EVENT_LABELS)
    assert labels["additionalProperties"] is False
    for name, label in labels["properties"].items():
        assert ("Trains" in label["description"]) == (name in LABELS), name
    for body in ("EventIn", "RankBody"):
        context = components[body]["properties"]["context"]
        assert context["additionalProperties"] is False
        assert {n: (p["minimum"], p["maximum"]) for n, p in context["properties"].items()} == {
            "region": (0, 4),
            "hour": (0, 23),
        }


def test_the_rank_order_is_explained(spec: dict[str, Any]) -> None:
    """Clients see why items are not sorted by score (MMR, exploration slots)."""
    order = spec["components"]["schemas"]["RankResponse"]["properties"]["order"]
    assert order["enum"] == ["mmr", "score"]
    assert "maximal marginal relevance" in order["description"]
    score = spec["components"]["schemas"]["RankedRoom"]["properties"]["score"]
    assert "not sorted by it" in score["description"]
    assert "mmr" in spec["paths"]["/v1/rank"]["post"]["description"]


def test_write_routes_declare_the_bearer_key(spec: dict[str, Any]) -> None:
    scheme = spec["components"]["securitySchemes"]["apiKey"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    secured = {op["operationId"] for _, _, op in operations(spec) if op.get("security")}
    assert secured == {"postEvents", "postSlices", "endRoom"}


# --- the docs pages ------------------------------------------------------------------------


def test_docs_pages_load_every_asset_from_this_server(client: TestClient) -> None:
    """Swagger UI and ReDoc render offline: every script, style and icon they reference is
    served here, and nothing points at another host (Litestar's defaults use CDNs)."""
    embedded = client.get("/schema/openapi.json").text  # each page carries the schema
    assets = set()
    for page in DOC_PAGES:
        response = client.get(page)
        assert response.status_code == 200, page
        assert response.headers["content-type"].startswith("text/html")
        html = response.text.replace(embedded, "")
        assert not re.search(r"(?:https?:)?//[A-Za-z0-9]", html), f"{page} names another host"
        urls = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", html)
        assert any(url.endswith(".js") for url in urls), page
        assets.update(urls)
    assert len(assets) >= 5  # swagger js, preset js, css; redoc js; the icon
    for url in sorted(assets):
        assert url.startswith("/schema/assets/"), url
        response = client.get(url)
        assert response.status_code == 200, url
        assert len(response.content) > 500, url
        kind = {"js": "javascript", "css": "text/css", "png": "image/png"}[url.rsplit(".", 1)[1]]
        assert kind in response.headers["content-type"], url


def test_only_the_named_assets_are_served(client: TestClient) -> None:
    for name in ("index.html", "../__init__.py", "nope.js"):
        assert client.get(f"/schema/assets/{name}").status_code == 404


# --- the error bodies ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def stand_ins(app: Litestar) -> Iterator[SimpleNamespace]:
    """Services for the error paths: a guard reads the keys, rank and events fail as the
    real ones do when the replay conflicts, the model is missing or Redis is down."""
    settings = settings_for_tests()
    services = SimpleNamespace(
        settings=settings,
        metrics=MagicMock(),
        assign=lambda user_id: Assignment("default", settings),
        rank_lanes=anyio.CapacityLimiter(1),
        pipeline=MagicMock(),
        catalog=MagicMock(),
    )
    services.catalog.room.return_value = None
    services.catalog.append_events.side_effect = SharedStateError("shared store down")
    app.state.services = services
    yield services
    del app.state.services


def event(**fields: Any) -> dict[str, Any]:
    return {"event_id": "e1", "ts": time.time(), "user_id": "u1", "room_id": "r1", **fields}


def test_each_declared_error_is_answered_with_the_problem_body(
    client: TestClient, spec: dict[str, Any], stand_ins: SimpleNamespace
) -> None:
    """Every error a route declares is answered as declared: a Problem, nothing more."""
    pipeline = stand_ins.pipeline
    cases = [
        ("rank", 400, lambda: client.post("/v1/rank", json={"user_id": "u", "k": 501})),
        ("rank", 413, lambda: client.post("/v1/rank", json={"user_id": "u" * 5000})),
        ("postEvents", 400, lambda: client.post("/v1/events", headers=AUTH, json={"events": []})),
        ("postEvents", 401, lambda: client.post("/v1/events", json={"events": [event()]})),
        (
            "postEvents",
            503,
            lambda: client.post("/v1/events", headers=AUTH, json={"events": [event()]}),
        ),
        ("postSlices", 401, lambda: client.post("/v1/rooms/r1/slices", json={"slices": []})),
        ("getRoom", 400, lambda: client.get("/v1/rooms/%00")),
        ("getRoom", 404, lambda: client.get("/v1/rooms/r404")),
        ("endRoom", 401, lambda: client.post("/v1/rooms/r1/end")),
    ]
    pipeline.rank.side_effect = ReplayConflictError("request_id 'x' was used")
    cases.append(("rank", 409, lambda: client.post("/v1/rank", json={"user_id": "u"})))
    answered = []
    for operation_id, status, call in cases:
        response = call()
        assert response.status_code == status, (operation_id, response.text)
        answered.append((operation_id, response))
    pipeline.rank.side_effect = ModelNotReadyError("no model yet")
    answered.append(("rank", client.post("/v1/rank", json={"user_id": "u"})))
    declared = {op["operationId"]: op["responses"] for _, _, op in operations(spec)}
    for operation_id, response in answered:
        status = response.status_code
        assert str(status) in declared[operation_id], (operation_id, status)
        assert response.headers["content-type"] == "application/problem+json"
        problem = msgspec.json.decode(response.content, type=Problem)  # no undeclared key
        assert problem.status == status and problem.title and problem.detail
    assert answered[-1][1].status_code == 503
