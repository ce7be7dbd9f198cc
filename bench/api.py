"""``POST /v1/rank`` with 1000 candidates through HTTP against in-process RankerServer scoring.

Setup (in a temporary data dir, default profile): 1200 rooms with random
128-d embeddings in a SQLite catalog, a codebook fitted on them, and a
``staged`` ranker trained on 20k synthetic events and published to the model
store. Then ``lucidrec serve --no-worker`` on a free port is driven by an async
client (kept-alive connections, requests encoded ahead) at concurrency 1, 8
and 32, and so is ``serve --workers 2``, two API processes that share
in-session state through a redis-server the benchmark starts; the baseline
scores the same requests with
``RankerServer.score`` in this process, with the API's ``api.torch_threads`` as
the server has them. Overhead ratio = HTTP p50 at
concurrency 1 / in-process p50. A second baseline runs the whole serving
pipeline in this process (``RankPipeline.rank``: candidate lookup, scoring, MMR,
exploration, the response), in turn with the first request by request, which
splits that overhead into the pipeline's own work and the HTTP layer's. Each
HTTP run also reports the API processes' CPU time per request, split between
the event-loop thread (uvicorn, Litestar, middleware, access log) and the
other threads (the ranking pipeline, logging, the refresher): what a request
costs the server, apart from what the client and the waiting cost. Prints one JSON.

    python bench/api.py [--requests 400]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import msgspec
import numpy as np
import psutil
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from api.schemas import RankBody
from api.services import Services
from bench.common import emit, log
from configs import load_settings
from ranker import (
    Candidates,
    EventBatch,
    History,
    ModelStore,
    OnlineTrainer,
    RankerServer,
    RankRequest,
    id_key,
    id_keys,
)
from tests.integration.api.conftest import api_env, start_server, stop
from tests.integration.services import redis_server
from workers.catalog import Catalog, SliceRecord
from workers.codebooks import retrain_from_catalog

ROOMS, K = 1200, 1000


def prepare(data: Path) -> tuple[dict[str, str], list[str]]:
    env = api_env(
        data, LUCIDREC_CONFIG="default", LUCIDREC_EXPERIMENTS_FILE="", LUCIDREC_API__API_KEYS="[]"
    )
    for test_only in ("LUCIDREC_EXPERIMENTS_FILE", "LUCIDREC_API__REFRESH_INTERVAL_S"):
        env.pop(test_only)  # the default profile's values, as `lucidrec serve` has them
    settings = load_settings(env=env)
    catalog = Catalog(settings.catalog.url)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((ROOMS * 2, 128)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    now = time.time()
    catalog.store_encoded(
        [SliceRecord(f"s{i}", f"room{i // 2}", now - 600 + i % 2, x[i]) for i in range(len(x))],
        None,
    )
    retrain_from_catalog(settings, progress=False)
    rooms = catalog.rooms()
    trainer = OnlineTrainer(
        settings.ranker, ModelStore.open(Path(settings.model_store) / "ranker", "staged")
    )
    n = 20_000
    pick = rng.integers(0, len(rooms), n)
    trainer.train(
        EventBatch(
            ts=now - 300 + np.arange(n) * 0.01,
            user=id_keys([f"u{i % 500}" for i in range(n)]),
            room=id_keys([rooms[p].room_id for p in pick]),
            room_lucid=np.array([rooms[p].room_lucid for p in pick]),
            slice_lucid=np.array([rooms[p].latest_slice_lucid for p in pick]),
            room_age_s=np.full(n, 300.0),
            context=np.zeros((n, len(settings.ranker.context)), int),
            labels={"click": (rng.random(n) < 0.3).astype(float)},
        )
    )
    trainer.save_snapshot()
    catalog.close()
    return env, [r.room_id for r in rooms][:K]


def in_process(
    env: dict[str, str], candidates: list[str], requests: int
) -> tuple[list[float], list[float]]:
    """``RankerServer.score`` and the whole ``RankPipeline.rank`` timed in this process,
    in turn request by request (so a drift of the machine's speed hits both alike),
    with the API's torch threads; the pipeline runs on the services the app builds."""
    settings = load_settings(env=env)
    torch.set_num_threads(settings.api.torch_threads)  # as the server runs it
    server = RankerServer(ModelStore.open(Path(settings.model_store) / "ranker", "staged"))
    services = Services(settings)
    catalog = Catalog(settings.catalog.url)
    rooms = {r.room_id: r for r in catalog.rooms(room_ids=candidates)}
    levels = settings.ranker.lucid.levels
    scoring, pipeline = [], []
    try:
        for i in range(requests):
            request = RankRequest(
                user=id_key(f"user{i}"),
                ts=time.time(),
                context=np.zeros(3, dtype=np.int64),
                history=History(
                    codes=np.zeros((1, 50, levels), int),
                    ts=np.zeros((1, 50)),
                    mask=np.zeros((1, 50), bool),
                ),
                candidates=Candidates(
                    room=id_keys(candidates),
                    room_lucid=np.array([rooms[c].room_lucid for c in candidates]),
                    slice_lucid=np.array([rooms[c].latest_slice_lucid for c in candidates]),
                    room_age_s=np.full(len(candidates), 300.0),
                ),
            )
            start = time.perf_counter()
            server.score(request, settings.serving.task_weights)
            scoring.append(time.perf_counter() - start)
            body = RankBody(user_id=f"user{i}", candidates=candidates, k=50)
            start = time.perf_counter()
            services.pipeline.rank(body, services.assign(body.user_id))
            pipeline.append(time.perf_counter() - start)
    finally:
        services.close()
        catalog.close()
    return scoring, pipeline


def percentiles(seconds: list[float]) -> dict[str, float]:
    return {
        "p50_ms": 1000 * float(np.percentile(seconds, 50)),
        "p99_ms": 1000 * float(np.percentile(seconds, 99)),
    }


def rank_request(host: str, body: dict) -> bytes:
    """One ``POST /v1/rank`` as HTTP/1.1 bytes, encoded ahead of the timed loop."""
    payload = msgspec.json.encode(body)
    head = (
        f"POST /v1/rank HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(payload)}\r\n\r\n"
    )
    return head.encode() + payload


async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes) -> int:
    """Send one request on a kept-alive connection and read its whole response; the status."""
    writer.write(data)
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    body = await reader.readexactly(length)
    status = int(head.split(b" ", 2)[1])
    if status != 200:
        raise RuntimeError(f"/v1/rank answered {status}: {body[:500]!r}")
    return status


async def load(url: str, candidates: list[str], concurrency: int, requests: int) -> dict:
    """``requests`` rank calls from ``concurrency`` kept-alive connections; latency and rate.

    The client is plain asyncio streams with the requests encoded ahead: a general
    client (httpx) spends more CPU per call than the server's HTTP layer does, on
    the same two cores (against a handler that does nothing, httpx peaks near
    300 req/s and adds ~3 ms per call), so it would measure itself.
    """
    host, port = url.removeprefix("http://").split(":")
    body = {"candidates": candidates, "k": 50}
    calls = iter([rank_request(host, body | {"user_id": f"user{i}"}) for i in range(requests)])
    latencies: list[float] = []

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        await exchange(reader, writer, rank_request(host, body | {"user_id": "warm"}))
        for data in calls:
            start = time.perf_counter()
            await exchange(reader, writer, data)
            latencies.append(time.perf_counter() - start)
        writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    return percentiles(latencies) | {"requests_per_s": requests / elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=400)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        log("preparing a catalog of 1200 rooms, a codebook and a trained model")
        env, candidates = prepare(Path(tmp))
        baseline, pipeline = in_process(env, candidates, args.requests)
        http = drive(env, candidates, Path(tmp) / "serve.log", args.requests)
        with redis_server() as redis_url:  # replicas share in-session state through it
            shared = env | {"LUCIDREC_API__SHARED_STATE_URL": f"{redis_url}/0"}
            http_2 = drive(shared, candidates, Path(tmp) / "serve2.log", args.requests, "2")
    scoring = percentiles(baseline)
    ratio = http["1"]["p50_ms"] / scoring["p50_ms"]
    emit(
        {
            "candidates": K,
            "in_process": scoring,
            "pipeline_in_process": percentiles(pipeline),
            "http": http,
            "http_2_processes": http_2,
            "overhead_ratio": ratio,
            "goals": {
                "p99_at_most_30ms_at_concurrency_8": http["8"]["p99_ms"] <= 30.0,
                "p99_at_most_30ms_at_concurrency_8_2_processes": http_2["8"]["p99_ms"] <= 30.0,
                "overhead_ratio_at_most_1_5": ratio <= 1.5,
            },
        }
    )


def drive(
    env: dict[str, str], candidates: list[str], log_file: Path, requests: int, processes: str = "1"
) -> dict[str, dict]:
    """``lucidrec serve --workers processes`` at concurrency 1, 8 and 32."""
    url, proc = start_server(env, log_file, "--no-worker", "--workers", processes)
    try:
        # /health answers once one process is up; another still loading would take CPU
        # from the timed runs, so wait for every process's start-up line
        started = "Application startup complete."
        deadline = time.monotonic() + 120
        while log_file.read_text().count(started) < int(processes):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{processes} API processes did not all start: see {log_file}")
            time.sleep(0.2)
        asyncio.run(load(url, candidates, 8, 40 * int(processes)))  # every token cache filled
        api = api_processes(proc.pid, int(url.rsplit(":", 1)[1]))
        http = {}
        for concurrency in (1, 8, 32):
            log(f"HTTP, {processes} process(es), concurrency {concurrency}")
            before = cpu_by_thread(api)
            http[str(concurrency)] = asyncio.run(load(url, candidates, concurrency, requests))
            after = cpu_by_thread(api)
            http[str(concurrency)]["server_cpu_ms_per_request"] = {
                part: round(1000 * (after[part] - before[part]) / requests, 3) for part in after
            }
        return http
    finally:
        stop(proc)


def api_processes(pid: int, port: int) -> list[psutil.Process]:
    """``serve`` and its children that listen on ``port``: ``serve`` itself with one
    process, its API processes with more (not the supervisor, not multiprocessing's
    resource tracker)."""
    serve = psutil.Process(pid)
    return [
        process
        for process in [serve, *serve.children()]
        if any(
            c.status == psutil.CONN_LISTEN and c.laddr.port == port
            for c in process.net_connections("tcp")
        )
    ]


def cpu_by_thread(processes: list[psutil.Process]) -> dict[str, float]:
    """CPU seconds (user + system) so far of the processes' event-loop threads (each
    process's main thread) and of all their other threads."""
    seconds = {"event_loop": 0.0, "other_threads": 0.0}
    for process in processes:
        for thread in process.threads():
            part = "event_loop" if thread.id == process.pid else "other_threads"
            seconds[part] += thread.user_time + thread.system_time
    return seconds


if __name__ == "__main__":
    main()
