"""The REST API through a real HTTP server and its embedded worker."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.integration.api.conftest import (
    AUTH,
    TOPICS,
    Server,
    api_env,
    engagements,
    slices,
    start_server,
    stop,
    wait_until,
)
from tests.integration.services import free_port
from workers.catalog import Catalog, SliceRecord

ROOMS = [f"{t}{r}" for t in TOPICS for r in range(6)]


def test_posted_slices_get_codes_visible_in_rooms(server: Server) -> None:
    with server.client() as c:
        room = c.get("/v1/rooms/cook0").json()
        assert room["n_slices"] == 6 and room["status"] == "live"
        assert room["lucid"] is not None and not room["codes_pending"]
        assert len(room["lucid"].split("-")) == 3
        task = c.post(
            "/v1/rooms/cook0/slices", headers=AUTH, json={"slices": slices("cook", 0, 8)[6:]}
        ).json()
        done = wait_until(
            lambda: (s := c.get(task["status_url"]).json())["state"] == "SUCCESS" and s, timeout=60
        )
        assert done["result"]["stored"] == 2 and done["result"]["codebook_version"]
        assert c.get("/v1/rooms/cook0").json()["n_slices"] == 8


def test_rank_answers_with_variant_versions_and_codes(server: Server) -> None:
    with server.client() as c:
        body = {
            "user_id": "user1",
            "candidates": [*ROOMS, "no-such-room"],
            "k": 5,
            "exclude": ["cook1"],
        }
        out = c.post("/v1/rank", json=body).json()
        assert out["variant"].startswith("retire_ids:") and out["model_version"]
        assert out["codebook_version"] and out["unknown"] == ["no-such-room"]
        assert len(out["items"]) == 5 and "cook1" not in {i["room_id"] for i in out["items"]}
        assert all(
            set(i["scores"]) == {"click", "quality_watch", "like", "follow"} for i in out["items"]
        )
        retrieved = c.post("/v1/rank", json={"user_id": "user1", "k": 12}).json()
        assert {i["room_id"] for i in retrieved["items"]} <= set(ROOMS)
        assert len(retrieved["items"]) >= 10


def test_a_room_whose_codes_are_pending_is_listed_unknown_not_ranked(server: Server) -> None:
    """A room stored before any code exists for it (as while no codebook is active). The
    embedded worker's maintenance may code it at any moment, so the check uses only rank
    answers given while ``GET /v1/rooms`` still reports the codes pending afterwards."""
    catalog = Catalog(server.settings.catalog.url)
    vector = np.full(server.settings.encoder.out_dim, 1.0, dtype=np.float32)
    vector /= np.linalg.norm(vector)
    try:
        with server.client() as c:
            for attempt in range(3):
                room = f"pending{attempt}"
                catalog.store_encoded([SliceRecord(f"{room}-0", room, time.time(), vector)], None)
                time.sleep(0.5)  # the API's room cache refreshes every 0.2 s here
                out = c.post(
                    "/v1/rank", json={"user_id": "user1", "candidates": [room, "cook0"], "k": 5}
                ).json()
                if c.get(f"/v1/rooms/{room}").json()["codes_pending"]:
                    break
            assert out["unknown"] == [room]
            assert [i["room_id"] for i in out["items"]] == ["cook0"]
    finally:
        catalog.close()


def test_same_request_id_replays_and_a_different_request_conflicts(server: Server) -> None:
    with server.client() as c:
        first = c.post("/v1/rank", json={"user_id": "u-replay", "candidates": ROOMS, "k": 6})
        request_id = first.json()["request_id"]
        again = c.post(
            "/v1/rank",
            json={"user_id": "u-replay", "candidates": ROOMS, "k": 6, "request_id": request_id},
        )
        assert again.json() == first.json()
        other = c.post(
            "/v1/rank",
            json={"user_id": "u-other", "candidates": ROOMS, "k": 6, "request_id": request_id},
        )
        assert other.status_code == 409
        assert other.headers["content-type"].startswith("application/problem+json")


def test_events_train_the_model_and_change_scores(server: Server) -> None:
    with server.client() as c:

        def scores() -> list[float]:
            out = c.post(
                "/v1/rank", json={"user_id": "fresh-user", "candidates": ROOMS, "k": 12}
            ).json()
            return sorted(round(i["score"], 6) for i in out["items"])

        before, model = scores(), c.get("/v1/model").json()
        accepted = c.post(
            "/v1/events", headers=AUTH, json={"events": engagements(range(8, 40), ROOMS, 1)}
        ).json()
        assert accepted["accepted"] == 32 * 12 and accepted["task_id"]

        def trained() -> bool:
            after = c.get("/v1/model").json()["variants"]
            return any(after[v]["step"] > model["variants"][v]["step"] for v in after)

        # recent events move the rooms' engagement statistics at once: wait for the trainer
        wait_until(trained, timeout=60, interval=0.3)
        assert scores() != before
        repeat = c.post(
            "/v1/events", headers=AUTH, json={"events": engagements(range(8, 10), ROOMS, 1)}
        ).json()
        assert repeat == {"accepted": 0, "duplicates": 24, "task_id": None}


def test_ab_assignment_is_stable_and_within_two_percent_of_weights(server: Server) -> None:
    def variant(i: int) -> str:
        with httpx.Client(base_url=server.url, timeout=30) as c:
            return c.post("/v1/rank", json={"user_id": f"ab{i}", "candidates": []}).json()[
                "variant"
            ]

    local = threading.local()

    def fast_variant(i: int) -> str:
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=server.url, timeout=30)
        return local.client.post("/v1/rank", json={"user_id": f"ab{i}", "candidates": []}).json()[
            "variant"
        ]

    with ThreadPoolExecutor(4) as pool:
        labels = list(pool.map(fast_variant, range(10_000)))
    counts = Counter(labels)
    assert abs(counts["retire_ids:staged"] / 10_000 - 0.6) < 0.02
    assert abs(counts["retire_ids:lucid"] / 10_000 - 0.4) < 0.02
    assert [variant(i) for i in range(20)] == labels[:20]  # stable on a new connection


def test_write_routes_need_the_api_key(server: Server) -> None:
    event = {"events": engagements(range(1), ["cook0"], 9)}
    with server.client() as c:
        missing = c.post("/v1/events", json=event)
        wrong = c.post("/v1/events", json=event, headers={"Authorization": "Bearer nope"})
        for response in (missing, wrong):
            assert response.status_code == 401
            assert response.headers["content-type"].startswith("application/problem+json")
        assert c.post("/v1/rooms/x/end").status_code == 401
        assert c.post("/v1/events", json=event, headers=AUTH).status_code == 202


def test_limits_give_problem_bodies_not_server_errors(server: Server) -> None:
    with server.client() as c:
        cases = [
            c.post("/v1/rank", json={"user_id": "u", "k": 501}),
            c.post("/v1/rank", json={"user_id": "u", "candidates": ["r"] * 5001}),
            c.post("/v1/rank", json={"user_id": "", "k": 5}),
            c.post("/v1/rank", json={"user_id": "u", "surprise": 1}),
            c.post("/v1/rank", content=b"{nope", headers={"content-type": "application/json"}),
            c.post("/v1/events", headers=AUTH, json={"events": []}),
            c.post("/v1/rooms/r/slices", headers=AUTH, json={"slices": [{"slice_id": "a"}] * 65}),
        ]
        for response in cases:
            assert response.status_code == 400, response.text
            problem = response.json()
            assert problem["status"] == 400 and problem["detail"]
        huge = c.post(
            "/v1/events",
            headers=AUTH,
            content=b"x" * 2_000_000,
            params={},
        )
        assert huge.status_code == 413


def test_ending_rooms(server: Server) -> None:
    with server.client() as c:
        ended = c.post("/v1/rooms/game5/end", headers=AUTH).json()
        assert ended["status"] == "ended" and ended["ended_at"]
        assert c.post("/v1/rooms/nothing/end", headers=AUTH).status_code == 404
        assert c.get("/v1/rooms/nothing").status_code == 404
        time.sleep(0.5)
        retrieved = c.post("/v1/rank", json={"user_id": "user2", "k": 20}).json()
        assert "game5" not in {i["room_id"] for i in retrieved["items"]}


def test_metrics_and_experiments(server: Server) -> None:
    with server.client() as c:
        assert c.get("/health").status_code == 200
        assert c.get("/v1/rooms/nothing").status_code == 404
        assert c.post("/v1/rank", json={"user_id": "metrics-user", "k": 3}).status_code == 200
        text = c.get("/metrics").text
        # every route is timed under its template; rank also under the user's variant
        rank_count = r'lucidrec_request_seconds_count\{route="/v1/rank",variant="[^"]+"\}'
        assert re.search(rank_count, text)
        assert 'lucidrec_request_seconds_count{route="/health",variant=""}' in text
        assert 'lucidrec_requests_total{route="/v1/rooms/{room_id}",status="404"}' in text
        for name in (
            "lucidrec_request_seconds_bucket",
            "lucidrec_queue_depth",
            "lucidrec_sync_lag_seconds",
            "lucidrec_table_rows",
            "lucidrec_warmup_stage",
            "lucidrec_encode_failures",
        ):
            assert name in text
        experiments = c.get("/v1/experiments").json()
        assert experiments["experiments"][0]["name"] == "retire_ids"
        assert experiments["last_error"] is None


def scores_of(c: httpx.Client, user: str, candidates: list[str] = ROOMS) -> dict[str, float]:
    """The score of each candidate for ``user``."""
    body = {"user_id": user, "candidates": candidates, "k": len(candidates)}
    return {i["room_id"]: i["score"] for i in c.post("/v1/rank", json=body).json()["items"]}


def gap(a: dict[str, float], b: dict[str, float]) -> float:
    """The largest difference between two rooms' scores."""
    return max(abs(a[room] - b[room]) for room in a)


def routed_like(c: httpx.Client, user: str, prefix: str) -> str:
    """A user (``prefix`` + a number) in the same A/B variant as ``user``."""

    def variant(u: str) -> str:
        return c.post("/v1/rank", json={"user_id": u, "candidates": []}).json()["variant"]

    wanted = variant(user)
    return next(f"{prefix}{i}" for i in range(100) if variant(f"{prefix}{i}") == wanted)


def scored_apart(c: httpx.Client, user: str, bystander: str) -> bool:
    """Whether ``user``'s scores stand apart from a bystander's (same variant, no history)
    by more than the bystander's move between two requests: engagement statistics decay
    with the clock, history tokens do not move every user alike."""
    mine, theirs, again = scores_of(c, user), scores_of(c, bystander), scores_of(c, bystander)
    return gap(mine, theirs) > 10 * gap(theirs, again)


def engaged_events(prefix: str, user: str, rooms: list[str]) -> list[dict]:
    """``user`` clicks and watches ``rooms`` in the last seconds (history weighs by recency)."""
    return [
        {
            "event_id": f"{prefix}{j}",
            "ts": time.time() - 10 + j,
            "user_id": user,
            "room_id": room,
            "labels": {"click": 1.0, "watch_s": 120.0},
        }
        for j, room in enumerate(rooms)
    ]


def test_posted_events_change_the_users_ranking_within_a_second_without_training(
    server: Server, tmp_path
) -> None:
    """A second API on the same catalog and frozen models but its own broker: no trainer
    sees its events. They move every user's scores (the rooms' engagement statistics) and
    the user's further (their history tokens), so the user, scored as a bystander of the
    same variant before, is scored apart from them after."""
    env = api_env(
        tmp_path,
        LUCIDREC_CATALOG__URL=server.settings.catalog.url,
        LUCIDREC_MODEL_STORE=frozen_models(server, tmp_path),
        LUCIDREC_EXPERIMENTS_FILE=server.env["LUCIDREC_EXPERIMENTS_FILE"],
    )
    url, proc = start_server(env, tmp_path / "serve.log", "--no-worker")
    try:
        with httpx.Client(base_url=url, timeout=30) as c:
            user = "session-user"
            other = routed_like(c, user, "bystander")
            before = scores_of(c, user)
            assert before == scores_of(c, other)  # no history, no statistics yet
            events = engaged_events("s", user, ["cook0", "cook2", "cook3"])
            posted = time.monotonic()
            assert c.post("/v1/events", headers=AUTH, json={"events": events}).status_code == 202
            wait_until(lambda: scored_apart(c, user, other), timeout=1.0, interval=0.05)
            assert time.monotonic() - posted < 1.0
            assert scores_of(c, other) != before  # the statistics moved the bystander too
    finally:
        stop(proc)


def test_replicas_sharing_redis_see_each_others_events_and_replays(
    server: Server, tmp_path, redis_url: str
) -> None:
    """Two more APIs on the same catalog and models, each with its own broker, and one
    shared Redis (``api.shared_state_url``): what reaches one replica, the other serves,
    the user's history and the rooms' engagement statistics alike. Two rooms with the same
    content (so the same codes and age) tie for a ``lucid_only`` user until one of them
    is clicked: then the other replica scores them apart."""
    with server.client() as c:
        twins = ["twin-a", "twin-b"]
        twin_slice = {"ts": 1_500.0, "title": "twin rooms: chess openings", "asr": "gambit"}
        for room in twins:
            task = c.post(
                f"/v1/rooms/{room}/slices",
                headers=AUTH,
                json={"slices": [twin_slice | {"slice_id": f"{room}-0"}]},
            ).json()
            wait_until(lambda t=task: c.get(t["status_url"]).json()["state"] == "SUCCESS", 60)
        codes = [c.get(f"/v1/rooms/{room}").json() for room in twins]
        assert codes[0]["lucid"] and codes[0]["lucid"] == codes[1]["lucid"]
        assert codes[0]["latest_slice_lucid"] == codes[1]["latest_slice_lucid"]
    models = frozen_models(server, tmp_path)
    replicas = []
    try:
        for name in ("a", "b"):
            (tmp_path / name).mkdir()
            env = replica_env(server, tmp_path / name, models, f"{redis_url}/6")
            replicas.append(start_server(env, tmp_path / name / "serve.log", "--no-worker"))
        with (
            httpx.Client(base_url=replicas[0][0], timeout=30) as a,
            httpx.Client(base_url=replicas[1][0], timeout=30) as b,
        ):
            assert b.get("/ready").status_code == 200
            user = "replica-user"
            other = routed_like(b, user, "replica-bystander")
            assert scores_of(b, user) == scores_of(b, other)
            events = engaged_events("replica", user, ["cook1", "cook4"])
            posted = time.monotonic()
            assert a.post("/v1/events", headers=AUTH, json={"events": events}).status_code == 202
            wait_until(lambda: scored_apart(b, user, other), timeout=1.0, interval=0.05)
            assert time.monotonic() - posted < 1.0

            body = {"user_id": user, "candidates": ROOMS, "k": 6}
            first = a.post("/v1/rank", json=body).json()
            again = b.post("/v1/rank", json=body | {"request_id": first["request_id"]})
            assert again.json() == first
            conflict = b.post(
                "/v1/rank", json=body | {"user_id": "someone", "request_id": first["request_id"]}
            )
            assert conflict.status_code == 409

            lucid_user = next(
                u
                for u in (f"twin-user{i}" for i in range(100))
                if b.post("/v1/rank", json={"user_id": u, "candidates": []}).json()[
                    "ranker_variant"
                ]
                == "lucid_only"
            )
            tied = scores_of(b, lucid_user, twins)
            assert tied["twin-a"] == tied["twin-b"]
            clicks = [
                {
                    "event_id": f"twin{j}",
                    "ts": time.time(),
                    "user_id": f"fan{j}",
                    "room_id": "twin-a",
                    "labels": {"click": 1.0, "watch_s": 120.0},
                }
                for j in range(40)
            ]
            posted = time.monotonic()
            assert a.post("/v1/events", headers=AUTH, json={"events": clicks}).status_code == 202

            def twins_apart() -> bool:
                scores = scores_of(b, lucid_user, twins)
                return abs(scores["twin-a"] - scores["twin-b"]) > 1e-6

            wait_until(twins_apart, timeout=1.0, interval=0.05)
            assert time.monotonic() - posted < 1.0
    finally:
        for _, proc in replicas:
            stop(proc)


def test_serve_with_two_workers_runs_two_processes_that_share_sessions(
    server: Server, tmp_path, redis_url: str
) -> None:
    """``serve --workers 2``: two API processes on one port; a fresh connection may reach
    either, and an event posted through one changes the ranking served by both alike (up
    to the statistics' decay between requests)."""
    env = replica_env(server, tmp_path, frozen_models(server, tmp_path), f"{redis_url}/7")
    url, proc = start_server(env, tmp_path / "serve.log", "--no-worker", "--workers", "2")
    try:
        wait_until(lambda: len(answering(url)) == 2, timeout=60)  # both up
        body = {"user_id": "two-workers", "candidates": ROOMS, "k": 12}

        def ranked() -> list[dict[str, float]]:
            """Eight fresh connections' answers: the kernel spreads them over the processes."""
            answers = []
            for _ in range(8):
                items = httpx.post(f"{url}/v1/rank", json=body, timeout=30).json()["items"]
                answers.append({i["room_id"]: i["score"] for i in items})
            return answers

        before = ranked()
        assert all(answer == before[0] for answer in before)
        events = engaged_events("workers", "two-workers", ["cook2", "cook5"])
        posted = httpx.post(f"{url}/v1/events", headers=AUTH, json={"events": events}, timeout=30)
        assert posted.status_code == 202
        time.sleep(1.0)
        after = ranked()
        moved = gap(after[0], before[0])
        assert moved > 0 and all(gap(answer, after[0]) < moved / 10 for answer in after)
    finally:
        stop(proc)


def test_serve_workers_spread_connections_and_replace_a_process_that_dies(
    server: Server, tmp_path, redis_url: str
) -> None:
    """Each API process listens in one SO_REUSEPORT group, and the kernel hashes each
    connection to one of them: sixteen opened together reach both (all on one: 2 ** -15).
    A process killed by SIGKILL is replaced; a SIGHUP to ``serve`` reloads the experiments
    file in every process; SIGTERM stops them all."""
    env = replica_env(server, tmp_path, frozen_models(server, tmp_path), f"{redis_url}/8")
    experiments = tmp_path / "experiments.yaml"
    shutil.copy(server.env["LUCIDREC_EXPERIMENTS_FILE"], experiments)
    env["LUCIDREC_EXPERIMENTS_FILE"] = str(experiments)
    log = tmp_path / "serve.log"
    url, proc = start_server(env, log, "--no-worker", "--workers", "2")

    def started(processes: int) -> bool:
        return log.read_text().count("Application startup complete.") == processes

    try:
        wait_until(lambda: started(2), timeout=60)
        first = answering(url)  # one burst
        assert len(first) == 2 and first <= set(descendants(proc.pid))
        victim = min(first)
        os.kill(victim, signal.SIGKILL)
        wait_until(lambda: started(3), timeout=60)
        second = answering(url)
        assert len(second) == 2 and victim not in second
        assert second <= set(descendants(proc.pid))
        stat = experiments.stat()
        experiments.write_text("experiments: []\n")
        os.utime(experiments, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # unseen by the watcher
        assert all(e["experiments"] for e in burst(url, "/v1/experiments"))
        os.kill(proc.pid, signal.SIGHUP)
        wait_until(lambda: all(not e["experiments"] for e in burst(url, "/v1/experiments")), 10)
        os.killpg(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=40) == 0
        assert not any(Path(f"/proc/{pid}").exists() for pid in second)
    finally:
        stop(proc)


def answering(url: str) -> set[int]:
    """Process ids that answered ``/health`` on one :func:`burst` of connections."""
    return {body["pid"] for body in burst(url, "/health")}


def burst(url: str, path: str, connections: int = 16) -> list[dict]:
    """JSON answers to ``GET path`` on ``connections`` connections, all opened before any
    is used, as a client's pool opens them; a connection not answered 200 gives none."""
    host, port = url.removeprefix("http://").split(":")
    socks = [socket.create_connection((host, int(port)), timeout=10) for _ in range(connections)]
    request = f"GET {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n".encode()
    answers = []
    for sock in socks:
        with sock:
            sock.sendall(request)
            reply = b"".join(iter(lambda sock=sock: sock.recv(65536), b""))
        head, _, body = reply.partition(b"\r\n\r\n")
        if head.startswith(b"HTTP/1.1 200"):
            answers.append(json.loads(body))
    return answers


def test_an_unreachable_shared_store_answers_503_problems_not_500s(
    server: Server, tmp_path
) -> None:
    nobody = f"redis://127.0.0.1:{free_port()}/0"
    env = replica_env(server, tmp_path, server.settings.model_store, nobody)
    url, proc = start_server(env, tmp_path / "serve.log", "--no-worker")
    try:
        with httpx.Client(base_url=url, timeout=30) as c:
            for response in (
                c.get("/ready"),
                c.post("/v1/rank", json={"user_id": "u", "candidates": ROOMS, "k": 3}),
            ):
                assert response.status_code == 503
                assert response.headers["content-type"].startswith("application/problem+json")
                assert "api.shared_state_url" in response.json()["detail"]
    finally:
        stop(proc)


def replica_env(server: Server, data: Path, models: str, shared_state_url: str) -> dict[str, str]:
    """An API of its own in ``data`` on ``server``'s catalog and experiments, serving the
    model store ``models`` and keeping in-session state at ``shared_state_url``."""
    return api_env(
        data,
        LUCIDREC_CATALOG__URL=server.settings.catalog.url,
        LUCIDREC_MODEL_STORE=models,
        LUCIDREC_EXPERIMENTS_FILE=server.env["LUCIDREC_EXPERIMENTS_FILE"],
        LUCIDREC_API__SHARED_STATE_URL=shared_state_url,
    )


def frozen_models(server: Server, tmp_path: Path) -> str:
    """A copy of the model store that no trainer writes: every process serves one model
    throughout, so a change in ranking can only come from the user's session."""
    copy = tmp_path / "models"
    shutil.copytree(server.settings.model_store, copy)
    return str(copy)


def descendants(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (Linux /proc)."""
    children = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines())
        except (OSError, ValueError):
            continue
        if int(fields.get("PPid", "0").strip()) == pid:
            children.append(int(status.parent.name))
    return children


def test_schema_fuzzing_never_gets_a_server_error(server: Server) -> None:
    """schemathesis generates requests for every operation of the OpenAPI schema (with the
    API key, so write routes are fuzzed past auth); none may answer 5xx."""
    schema = schemathesis.openapi.from_url(f"{server.url}/schema/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 9
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        def no_server_error(case) -> None:
            response = case.call(headers=AUTH, timeout=30)
            assert response.status_code < 500, (
                f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:300]}"
            )

        no_server_error()
