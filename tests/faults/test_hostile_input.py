"""Hostile input through a real ``lucidrec serve``: a corpus of requests over every route.

Bad types, sizes, encodings, ids, timestamps, nesting, headers and frames. Whatever a
request holds, the API answers it without a server error, refuses it with a problem
body (RFC 9457), and keeps nothing of it: afterwards the catalog (rooms, slices, the
event log the trainer reads) holds what it held, but for the slices the API accepts
because only the encode task can judge their frames, each stored as failed. One server
(the API and its embedded worker) per catalog backend, the embedded SQLite and a
scratch PostgreSQL database: PostgreSQL refuses what SQLite stores (ids past their
column's width, NUL in text), so the same corpus must fare the same on both.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import numpy as np
import pytest

from api.app import create_app
from configs import Settings, load_settings
from ranker import ModelStore, OnlineTrainer
from tests.integration.api.conftest import AUTH, api_env, start_server, stop, wait_until
from tests.integration.services import postgres_database
from workers.catalog import Catalog, SliceRecord
from workers.codebooks import retrain_from_catalog

SEED_ROOM = "seed-room"
NOTHING = object()

# Ids that break the id rules (api.schemas.Id) in every way a client could.
BAD_IDS = {
    "empty": "",
    "129 characters": "r" * 129,
    "4 KB": "x" * 4096,
    "NUL": "room\x00",
    "final newline": "room\n",
    "escape character": "ro\x1bom",
    "DEL": "room\x7f",
    "space": "my room",
    "slash": "a/b",
    "percent": "a%00",
    "non-ASCII": "salle-\u00e9",
    "right-to-left override": "abc\u202egpj",
    "dot-dot": "..",
    "leading dash": "-rf",
}
# The same ids as path segments: every byte percent-encoded but letters and digits, so
# no client normalizes them (``..``) and the server decodes exactly the bad id.
PATH_IDS = {
    name: "".join(c if c.isascii() and c.isalnum() else quote(c, safe="") for c in value)
    for name, value in BAD_IDS.items()
    if value  # an empty segment routes elsewhere
} | {"percent-encoded invalid UTF-8": "%FF%FE"}


def path_status(name: str) -> int:
    """What a bad path id gets: 400, but a slash or a dot segment, decoded, leaves the
    route, so no route answers (404)."""
    return 404 if name in ("slash", "dot-dot") else 400


@dataclass(frozen=True)
class Case:
    """One request, the app's route it tries, and the status it must get."""

    name: str
    method: str
    route: str  # the app's path template, as Litestar names it
    path: str
    status: int
    json: Any = NOTHING
    content: bytes | None = None
    headers: dict[str, str | bytes] = field(default_factory=dict)
    # False only where no lucidrec code answers: uvicorn's HTTP parser, and the HTML
    # page Litestar's API docs show a browser for a page they do not have
    problem: bool = True

    def send(self, client: httpx.Client) -> httpx.Response:
        body = self.content if self.json is NOTHING else json.dumps(self.json).encode()
        headers = self.headers
        if body is not None:
            headers = {"content-type": "application/json"} | headers
        return client.request(self.method, self.path, content=body, headers=headers)


_ids = itertools.count()


def event(**changes: Any) -> dict[str, Any]:
    """A valid event with ``changes``, with an id of its own (accepted, it is no duplicate)."""
    base = {
        "event_id": f"hostile-ev-{next(_ids)}",
        "ts": time.time() - 60,
        "user_id": "hostile-user",
        "room_id": SEED_ROOM,
        "context": {"hour": 3},
        "labels": {"click": 1.0},
    }
    return base | changes


def slice_(**changes: Any) -> dict[str, Any]:
    return {"slice_id": f"hostile-slice-{next(_ids)}", "ts": time.time(), "title": "t"} | changes


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def events_cases() -> list[Case]:
    route = "/v1/events"

    def post(name: str, body: Any = NOTHING, status: int = 400, **kw: Any) -> Case:
        headers = kw.pop("headers", AUTH)
        return Case(f"events: {name}", "POST", route, route, status, body, headers=headers, **kw)

    now = time.time()
    cases = [
        post(f"{field_} {name}", {"events": [event(**{field_: bad})]})
        for field_ in ("event_id", "user_id", "room_id", "slice_id", "request_id")
        for name, bad in BAD_IDS.items()
    ]
    cases += [
        post("variant NUL", {"events": [event(variant="a\x00")]}),
        post("variant 2000 characters", {"events": [event(variant="v" * 2000)]}),
        post("ts in milliseconds", {"events": [event(ts=1796235400000)]}),
        post("ts zero", {"events": [event(ts=0)]}),
        post("ts negative", {"events": [event(ts=-1.0)]}),
        post("ts 1e308", {"events": [event(ts=1e308)]}),
        post("ts an hour ahead", {"events": [event(ts=now + 3600)]}),
        post("ts eight days ago", {"events": [event(ts=now - 8 * 86400)]}),
        post("ts a date string", {"events": [event(ts="2026-01-01T00:00:00Z")]}),
        post("ts null", {"events": [event(ts=None)]}),
        post("ts true", {"events": [event(ts=True)]}),
        post("ts missing", {"events": [{k: v for k, v in event().items() if k != "ts"}]}),
        post("one bad ts among good events", {"events": [event(), event(ts=1e12), event()]}),
        post("context unknown feature", {"events": [event(context={"moon": 1})]}),
        post("context hour 24", {"events": [event(context={"hour": 24})]}),
        post("context device 8", {"events": [event(context={"device": 8})]}),
        post("context negative", {"events": [event(context={"hour": -1})]}),
        post("context 2**63", {"events": [event(context={"hour": 2**63})]}),
        post("context 2**70", {"events": [event(context={"hour": 2**70})]}),
        post("context float", {"events": [event(context={"hour": 1.5})]}),
        post("context a word", {"events": [event(context={"hour": "three"})]}),
        post("context a list", {"events": [event(context=[1, 2])]}),
        post("unknown label", {"events": [event(labels={"purchase": 1.0})]}),
        post("label a string", {"events": [event(labels={"click": "yes"})]}),
        post("unknown field", {"events": [event(extra=1)]}),
        post("position a string", {"events": [event(position="first")]}),
        post("events an object", {"events": event()}),
        post("events empty", {"events": []}),
        post("1001 events", {"events": [event() for _ in range(1001)]}),
        post("body an array", [event()]),
        post("body null", None),
        post("body empty", content=b""),
        post("body not JSON", content=b"{nope"),
        post("body invalid UTF-8", content=b'{"events": [{"event_id": "\xff\xfe"}]}'),
        post("lone surrogate escape", content=b'{"events": [{"event_id": "a\\ud800"}]}'),
        post("NaN literal", content=b'{"events": [{"ts": NaN}]}'),
        post("number out of range", content=b'{"events": [{"ts": 1e400}]}'),
        post("trailing garbage", content=json.dumps({"events": [event()]}).encode() + b"}}"),
        post("nested 1000 deep", content=b'{"events": ' + nested(1000) + b"}"),
        post("nested 100000 deep", content=b'{"events": ' + nested(100_000) + b"}"),
        post(
            "context nested 1000 deep", content=b'{"events": [{"context": ' + nested(1000) + b"}]}"
        ),
        post(
            "body over the limit", content=b'{"events": ["' + b"x" * 1_100_000 + b'"]}', status=413
        ),
        post("no API key", {"events": [event()]}, 401, headers={}),
        post("wrong API key", {"events": [event()]}, 401, headers={"Authorization": "Bearer no"}),
        post(
            "non-ASCII API key",
            {"events": [event()]},
            401,
            headers={"Authorization": "Bearer cl\u00e9-\u043a\u043b\u044e\u0447".encode()},
        ),
        post(
            "Latin-1 API key", {"events": [event()]}, 401, headers={"Authorization": b"Bearer \xe9"}
        ),
        post("basic auth", {"events": [event()]}, 401, headers={"Authorization": "Basic dGVzdA=="}),
        post("bearer without key", {"events": [event()]}, 401, headers={"Authorization": "Bearer"}),
        post(
            "8 KB API key",
            {"events": [event()]},
            401,
            headers={"Authorization": "Bearer " + "k" * 8192},
        ),
        Case("events: GET", "GET", route, route, 405),
    ]
    return cases


def rank_cases() -> list[Case]:
    route = "/v1/rank"

    def post(name: str, body: Any = NOTHING, status: int = 400, **kw: Any) -> Case:
        return Case(f"rank: {name}", "POST", route, route, status, body, **kw)

    good = {"user_id": "hostile-user", "candidates": [SEED_ROOM], "k": 5}
    cases = [post(f"user_id {name}", good | {"user_id": bad}) for name, bad in BAD_IDS.items()]
    cases += [
        post(f"candidate {name}", good | {"candidates": [SEED_ROOM, BAD_IDS[name]]})
        for name in ("NUL", "129 characters", "non-ASCII", "final newline")
    ]
    cases += [
        post(f"exclude {name}", good | {"exclude": [BAD_IDS[name]]})
        for name in ("NUL", "129 characters", "slash")
    ]
    cases += [
        post(f"request_id {name}", good | {"request_id": BAD_IDS[name]})
        for name in ("NUL", "129 characters", "space", "empty")
    ]
    cases += [
        post("context unknown feature", good | {"context": {"moon": 1}}),
        post("context hour 24", good | {"context": {"hour": 24}}),
        post("context weekday 7", good | {"context": {"weekday": 7}}),
        post("context negative", good | {"context": {"device": -1}}),
        post("context 2**63", good | {"context": {"hour": 2**63}}),
        post("context 2**64", good | {"context": {"hour": 2**64}}),
        post("context true", good | {"context": {"hour": True}}),
        post("k zero", good | {"k": 0}),
        post("k 501", good | {"k": 501}),
        post("k a word", good | {"k": "five"}),
        post("k a float", good | {"k": 5.5}),
        post("candidates 5001", good | {"candidates": ["r"] * 5001}),
        post("candidates a string", good | {"candidates": SEED_ROOM}),
        post("user_id a number", good | {"user_id": 7}),
        post("unknown field", good | {"surprise": 1}),
        post("body a string", "rank me"),
        post("body empty", content=b""),
        post("body invalid UTF-8", content=b'{"user_id": "\xc3\x28"}'),
        post("nested 1000 deep", content=b'{"user_id": "u", "context": ' + nested(1000) + b"}"),
        post("candidates nested 1000 deep", content=b'{"candidates": ' + nested(1000) + b"}"),
        post("duplicate key ending bad", content=b'{"user_id": "u", "user_id": "a\\u0000"}'),
        post(
            "valid, with an X-Request-ID of invalid UTF-8",
            good,
            200,
            headers={"X-Request-ID": b"\xff\xfe"},
        ),
        post("valid, with a 4 KB X-Request-ID", good, 200, headers={"X-Request-ID": "r" * 4096}),
        post("valid, as text/plain", good, 200, headers={"content-type": "text/plain"}),
        Case("rank: GET", "GET", route, route, 405),
    ]
    return cases


def slices_cases() -> list[Case]:
    route = "/v1/rooms/{room_id:str}/slices"
    path = f"/v1/rooms/{SEED_ROOM}/slices"

    def post(name: str, body: Any = NOTHING, status: int = 400, **kw: Any) -> Case:
        headers = kw.pop("headers", AUTH)
        target = kw.pop("path", path)
        return Case(f"slices: {name}", "POST", route, target, status, body, headers=headers, **kw)

    png_header = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
    cases = [
        post(
            f"room_id {name}",
            {"slices": [slice_()]},
            path_status(name),
            path=f"/v1/rooms/{bad}/slices",
        )
        for name, bad in PATH_IDS.items()
    ]
    cases += [
        post(f"slice_id {name}", {"slices": [slice_(slice_id=bad)]})
        for name, bad in BAD_IDS.items()
    ]
    cases += [
        post("frame data not base64", {"slices": [slice_(frames=[{"data": "!!not base64!!"}])]}),
        post("frame data unpadded", {"slices": [slice_(frames=[{"data": "aGVsbG8"}])]}),
        post("frame data a number", {"slices": [slice_(frames=[{"data": 12345}])]}),
        post("frame data a list", {"slices": [slice_(frames=[{"data": [1, 2]}])]}),
        post("frame path NUL", {"slices": [slice_(frames=[{"path": "a\x00.jpg"}])]}),
        post("frame path newline", {"slices": [slice_(frames=[{"path": "a.jpg\n"}])]}),
        post("frame path 2000 characters", {"slices": [slice_(frames=[{"path": "p" * 2000}])]}),
        post("frame path empty", {"slices": [slice_(frames=[{"path": ""}])]}),
        post("frame unknown field", {"slices": [slice_(frames=[{"url": "http://x"}])]}),
        post("frames an object", {"slices": [slice_(frames={"data": b64(png_header)})]}),
        post(
            "frame over the body limit",
            {"slices": [slice_(frames=[{"data": "A" * 1_400_000}])]},
            413,
        ),
        post("ts a string", {"slices": [slice_(ts="now")]}),
        post("tags not strings", {"slices": [slice_(tags=[1, 2])]}),
        post("65 slices", {"slices": [slice_() for _ in range(65)]}),
        post("slices empty", {"slices": []}),
        post("nested 1000 deep", content=b'{"slices": ' + nested(1000) + b"}"),
        post("no API key", {"slices": [slice_()]}, 401, headers={}),
        # Accepted: only the encode task can tell an image (it fails such a slice alone,
        # with its reason, in the task's result).
        post(
            "frame not an image", {"slices": [slice_(frames=[{"data": b64(b"not an image")}])]}, 202
        ),
        post(
            "frame a truncated PNG", {"slices": [slice_(frames=[{"data": b64(png_header)}])]}, 202
        ),
        post(
            "frame path outside the media root",
            {"slices": [slice_(frames=[{"path": "../../etc/passwd"}])]},
            202,
        ),
    ]
    return cases


def rooms_cases() -> list[Case]:
    room, end = "/v1/rooms/{room_id:str}", "/v1/rooms/{room_id:str}/end"
    cases = [
        Case(f"room: room_id {name}", "GET", room, f"/v1/rooms/{bad}", path_status(name))
        for name, bad in PATH_IDS.items()
    ]
    cases += [
        Case(
            f"end: room_id {name}",
            "POST",
            end,
            f"/v1/rooms/{bad}/end",
            path_status(name),
            headers=AUTH,
        )
        for name, bad in PATH_IDS.items()
    ]
    cases += [
        Case("room: unknown room", "GET", room, "/v1/rooms/no-such-room", 404),
        Case("room: the seed room", "GET", room, f"/v1/rooms/{SEED_ROOM}", 200),
        Case("room: with a query of NUL", "GET", room, f"/v1/rooms/{SEED_ROOM}?x=%00&%FF=1", 200),
        Case("room: DELETE", "DELETE", room, f"/v1/rooms/{SEED_ROOM}", 405),
        Case("room: OPTIONS", "OPTIONS", room, f"/v1/rooms/{SEED_ROOM}", 204),
        Case("end: no API key", "POST", end, f"/v1/rooms/{SEED_ROOM}/end", 401),
        Case(
            "end: non-ASCII API key",
            "POST",
            end,
            f"/v1/rooms/{SEED_ROOM}/end",
            401,
            headers={"Authorization": "Bearer \u043a\u043b\u044e\u0447".encode()},
        ),
        Case("end: unknown room", "POST", end, "/v1/rooms/no-such-room/end", 404, headers=AUTH),
        Case("end: GET", "GET", end, f"/v1/rooms/{SEED_ROOM}/end", 405),
    ]
    return cases


def tasks_cases() -> list[Case]:
    route = "/v1/tasks/{task_id:str}"
    cases = [
        Case(f"task: task_id {name}", "GET", route, f"/v1/tasks/{bad}", 400)
        for name, bad in PATH_IDS.items()
        if name in ("NUL", "129 characters", "non-ASCII", "percent-encoded invalid UTF-8", "space")
    ]
    cases.append(Case("task: unknown task", "GET", route, "/v1/tasks/no-such-task", 200))
    return cases


def meta_cases() -> list[Case]:
    """The read-only routes (and the schema's), each with hostile headers or a query."""
    attacks = {
        "X-Request-ID of invalid UTF-8": {"X-Request-ID": b"\xff\xfe\xfd"},
        "4 KB X-Request-ID": {"X-Request-ID": "i" * 4096},
        "Authorization of invalid UTF-8": {"Authorization": b"Bearer \xff"},
    }
    service = ["/health", "/ready", "/metrics", "/v1/model", "/v1/experiments"]
    schema = ["/schema", "/schema/openapi.json", "/schema/openapi.yaml", "/schema/openapi.yml"]
    schema += [f"/schema/{page}" for page in ("swagger", "redoc")]
    schema.append("/schema/oauth2-redirect.html")
    cases = [
        Case(f"{path}: {name}", "GET", path, path, 200, headers=headers)
        for path in service
        for name, headers in attacks.items()
    ]
    invalid = attacks["X-Request-ID of invalid UTF-8"]
    cases += [
        Case(f"{path}: X-Request-ID of invalid UTF-8", "GET", path, path, 200, headers=invalid)
        for path in schema
    ]
    cases += [
        Case("/health: query of invalid UTF-8", "GET", "/health", "/health?%FF%FE=%00", 200),
        Case(
            "/health: X-Request-ID with a control character (refused by the HTTP parser)",
            "GET",
            "/health",
            "/health",
            400,
            headers={"X-Request-ID": b"a\x01b"},
            problem=False,
        ),
        Case("/health: POST", "POST", "/health", "/health", 405),
        Case("/metrics: DELETE", "DELETE", "/metrics", "/metrics", 405),
        Case("/v1/model: POST", "POST", "/v1/model", "/v1/model", 405),
        Case("/schema/{path}: NUL .json", "GET", "/schema/{path:str}", "/schema/%00.json", 404),
        Case(
            "/schema/{path}: NUL page",
            "GET",
            "/schema/{path:str}",
            "/schema/%00",
            404,
            problem=False,
        ),
        Case(
            "/schema/assets/{name}: a file the allow-list lacks",
            "GET",
            "/schema/assets/{name:str}",
            "/schema/assets/..%2F..%2Fpyproject.toml",
            404,
        ),
        Case(
            "/schema/assets/{name}: NUL",
            "GET",
            "/schema/assets/{name:str}",
            "/schema/assets/%00",
            404,
        ),
        Case("unmatched route", "GET", "unmatched", "/v1/%00/../x", 404),
    ]
    return cases


def corpus() -> list[Case]:
    return [
        *events_cases(),
        *rank_cases(),
        *slices_cases(),
        *rooms_cases(),
        *tasks_cases(),
        *meta_cases(),
    ]


@dataclass
class Served:
    url: str
    settings: Settings

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30)


def seed(settings: Settings) -> None:
    """One room in the catalog, with the slices a first codebook needs (one per code: /ready
    waits for a codebook) and that codebook, and a first snapshot of the served ranker
    variant."""
    catalog = Catalog(settings.catalog.url)
    try:
        rng = np.random.default_rng(0)
        vectors = rng.normal(size=(settings.quantizer.codes, settings.encoder.out_dim))
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        catalog.store_encoded(
            [
                SliceRecord(f"seed-slice-{i}", SEED_ROOM, time.time(), v.astype(np.float32))
                for i, v in enumerate(vectors)
            ],
            None,
        )
    finally:
        catalog.close()
    retrain_from_catalog(settings, progress=False)
    store = ModelStore.open(Path(settings.model_store) / "ranker", settings.ranker.variant)
    OnlineTrainer(settings.ranker, store).save_snapshot()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    """``lucidrec serve`` (the API and its embedded worker) on a catalog of each backend."""
    data = tmp_path_factory.mktemp(f"hostile-{request.param}")
    (data / "experiments.yaml").write_text("experiments: []\n")
    with ExitStack() as stack:
        if request.param == "sqlite":
            url = f"sqlite:///{data}/catalog.db"
        else:
            url = stack.enter_context(postgres_database())
        env = api_env(data, LUCIDREC_CATALOG__URL=url)
        settings = load_settings(env=env)
        seed(settings)
        base, proc = start_server(env, data / "serve.log")
        stack.callback(stop, proc)
        with httpx.Client(base_url=base, timeout=30) as c:
            wait_until(lambda: c.get("/ready").status_code == 200, timeout=120, interval=0.2)
        yield Served(base, settings)


def stored(settings: Settings) -> dict[str, Any]:
    """What the catalog holds that a request could add to: rooms, slices, the event log."""
    catalog = Catalog(settings.catalog.url)
    try:
        return {
            "rooms": sorted((r.room_id, r.status, r.n_slices) for r in catalog.rooms()),
            "encoded": catalog.count_slices("encoded"),
            "failed": catalog.count_slices("failed"),
            "event log": catalog.log_head(),
        }
    finally:
        catalog.close()


def is_problem(response: httpx.Response) -> bool:
    """Whether ``response`` carries an RFC 9457 problem body with its status and a detail."""
    if not response.headers.get("content-type", "").startswith("application/problem+json"):
        return False
    body = response.json()
    return body.get("status") == response.status_code and bool(body.get("detail"))


def finished(c: httpx.Client, status_url: str) -> dict[str, Any]:
    """The task's status once it ran."""
    return wait_until(
        lambda: (s := c.get(status_url).json())["state"] in ("SUCCESS", "FAILURE") and s,
        timeout=120,
        interval=0.2,
    )


def test_the_corpus_covers_every_route_of_the_app() -> None:
    cases = corpus()
    app = create_app(Settings())
    routes = {(m, r.path) for r in app.routes for m in r.methods if m != "OPTIONS"}
    tried = {(c.method, c.route) for c in cases}
    assert routes <= tried, sorted(routes - tried)
    assert len(cases) >= 100


def test_hostile_requests_get_no_server_error_a_problem_body_and_store_nothing(
    served: Served,
) -> None:
    """Each request gets its expected status, a problem body if refused; afterwards the
    catalog holds what it held (no room, no event in the log), but for the slices the
    API accepted because only the encode task can judge their frames: each is stored
    failed, with its reason, and none encoded."""
    cases = corpus()
    before = stored(served.settings)
    wrong, tasks = [], []
    with served.client() as c:
        started = time.monotonic()
        for case in cases:
            response = case.send(c)
            if response.status_code != case.status or not (
                response.status_code < 400 or is_problem(response) or not case.problem
            ):
                wrong.append(f"{case.name}: {response.status_code} {response.text[:200]!r}")
            elif case.route.endswith("/slices") and response.status_code == 202:
                tasks.append(response.json()["status_url"])
        print(f"\n{len(cases)} hostile requests in {time.monotonic() - started:.1f} s")
        outcomes = [finished(c, url) for url in tasks]
    assert not wrong, "\n".join(wrong)
    for outcome in outcomes:
        assert outcome["state"] == "SUCCESS" and outcome["result"]["stored"] == 0
        assert len(outcome["result"]["failed"]) == 1
    after = stored(served.settings)
    assert after == before | {"failed": before["failed"] + len(tasks)}


def test_an_x_request_id_that_is_not_an_id_is_replaced_by_a_fresh_one(served: Served) -> None:
    with served.client() as c:
        kept = c.get("/health", headers={"X-Request-ID": "client-req:42"})
        assert kept.headers["x-request-id"] == "client-req:42"
        for bad in (b"\xff\xfe", b"a\tb", b"r" * 129, b"has space", b"caf\xc3\xa9"):
            response = c.get("/health", headers={"X-Request-ID": bad})
            assert response.status_code == 200
            assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])


def test_a_refused_event_time_names_the_field_the_index_and_the_window(served: Served) -> None:
    """The repro of the issue: a ts in milliseconds was accepted. The whole post is
    refused, naming each bad event; the same events in seconds are accepted."""
    events = [event(), event(ts=1796235400000), event(context={"hour": 99})]
    with served.client() as c:
        refused = c.post("/v1/events", headers=AUTH, json={"events": events})
        assert refused.status_code == 400
        problem = refused.json()
        assert problem["detail"].startswith("events[1].ts: 1796235400000")
        assert "[now - 518400 s, now + 300 s]" in problem["detail"]
        assert "api.event_ts_past_s" in problem["detail"]
        assert [p["key"] for p in problem["extra"]] == ["events[1].ts", "events[2].context.hour"]
        assert "outside [0, 24)" in problem["extra"][1]["message"]
        fixed = [events[0], event(ts=time.time() + 200), event(ts=time.time() - 5 * 86400)]
        accepted = c.post("/v1/events", headers=AUTH, json={"events": fixed})
        assert accepted.status_code == 202 and accepted.json()["accepted"] == 3


def test_a_rank_context_the_ranker_cannot_read_is_refused_naming_the_feature(
    served: Served,
) -> None:
    with served.client() as c:
        body = {"user_id": "u", "candidates": [SEED_ROOM]}
        unknown = c.post("/v1/rank", json=body | {"context": {"hour": 3, "moon": 1}})
        assert unknown.status_code == 400
        assert "unknown context feature 'moon'" in unknown.json()["detail"]
        assert "hour, weekday, device" in unknown.json()["detail"]
        ok = c.post("/v1/rank", json=body | {"context": {"hour": 23, "weekday": 6, "device": 7}})
        assert ok.status_code == 200 and ok.json()["ranker_variant"] == "staged"
