"""Encode throughput through the task queue against the encoder called in-process.

One real worker process (``lucidrec worker --queues encode --concurrency 1``) per
broker: a private Redis, and the embedded SQLite broker. N slices go out in
tasks of 32 slices; throughput is slices over the time from the first send to
the last result. The baseline encodes the same slices in-process in batches of
32 (best of two runs, one before and one after the queue runs). Task latency is
the round trip of a one-slice task, sent one after another. Prints one JSON.

    python bench/workers.py [--slices 512] [--latency-tasks 20]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import emit, log
from configs import load_settings
from encoder import SliceEncoder, SliceInput
from tests.integration.services import redis_server
from tests.integration.workers.harness import Worker, client, worker_env

BATCH = 32
WORDS = [
    "cooking",
    "live",
    "stream",
    "pasta",
    "guitar",
    "lesson",
    "speedrun",
    "chess",
    "opening",
    "street",
    "food",
    "football",
    "highlights",
    "makeup",
    "tutorial",
    "travel",
    "vlog",
]


def make_slices(n: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    tag = uuid.uuid4().hex[:6]
    return [
        {
            "slice_id": f"{tag}-{i}",
            "ts": float(i),
            "title": " ".join(rng.choice(WORDS, 6)),
            "asr": " ".join(rng.choice(WORDS, 60)),
            "tags": list(rng.choice(WORDS, 3)),
        }
        for i in range(n)
    ]


def in_process(slices: list[dict]) -> float:
    """Seconds to encode ``slices`` in batches of 32 with the encoder in this process."""
    encoder = SliceEncoder.from_settings(load_settings("default", env={}).encoder)
    inputs = [SliceInput(**s) for s in slices]
    encoder.encode(inputs[:BATCH])  # warm up
    start = time.perf_counter()
    for i in range(0, len(inputs), BATCH):
        encoder.encode(inputs[i : i + BATCH])
    return time.perf_counter() - start


def through_queue(broker: str, slices: list[dict], latency_tasks: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        env = worker_env(
            Path(tmp),
            broker,
            f"sqlite:///{tmp}/catalog.db",
            LUCIDREC_CONFIG="default",
            LUCIDREC_WORKERS__CONCURRENCY="1",
        )
        app, _ = client(env)
        worker = Worker(env, "encode", Path(tmp) / "worker.log")
        try:
            warm = make_slices(BATCH, seed=1)
            app.send_task("lucidrec.encode.slices", args=["warm", warm]).get(timeout=300)
            start = time.perf_counter()
            sent = [
                app.send_task("lucidrec.encode.slices", args=[f"room{i}", slices[i : i + BATCH]])
                for i in range(0, len(slices), BATCH)
            ]
            stored = sum(r.get(timeout=600, interval=0.01)["stored"] for r in sent)
            elapsed = time.perf_counter() - start
            assert stored == len(slices), f"stored {stored} of {len(slices)}"
            latencies = []
            for one in make_slices(latency_tasks, seed=2):
                t0 = time.perf_counter()
                app.send_task("lucidrec.encode.slices", args=["lat", [one]]).get(
                    timeout=60, interval=0.005
                )
                latencies.append(time.perf_counter() - t0)
        finally:
            worker.stop()
    return {
        "seconds": elapsed,
        "slices_per_s": len(slices) / elapsed,
        "task_latency_p50_ms": 1000 * float(np.percentile(latencies, 50)),
        "task_latency_p99_ms": 1000 * float(np.percentile(latencies, 99)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--slices", type=int, default=512)
    parser.add_argument("--latency-tasks", type=int, default=20)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    slices = make_slices(args.slices, seed=0)
    log(f"in-process baseline: {len(slices)} slices in batches of {BATCH}")
    baseline = [in_process(slices)]
    results: dict[str, dict[str, float]] = {}
    with redis_server() as redis_url:
        for name, broker in (("redis", redis_url), ("sqlite", "sqlite")):
            log(f"through the queue: {name} broker")
            results[name] = through_queue(
                broker, make_slices(args.slices, seed=0), args.latency_tasks
            )
    baseline.append(in_process(slices))
    base_s = min(baseline)
    for run in results.values():
        run["overhead"] = run["seconds"] / base_s - 1.0
    emit(
        {
            "slices": args.slices,
            "batch": BATCH,
            "in_process": {"seconds": base_s, "slices_per_s": args.slices / base_s},
            "queue": results,
            "goals": {"redis_overhead_at_most_15pct": results["redis"]["overhead"] <= 0.15},
        }
    )


if __name__ == "__main__":
    main()
