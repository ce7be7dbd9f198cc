"""Worker metrics: task outcomes from Celery's signals, frames from the encoder's FrameStats,
and a prefork pool's children summed through multiprocess files."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from celery import Celery

from encoder.images import FrameStats
from workers.metrics import TaskMetrics, task_metrics


def value(metrics: TaskMetrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


@pytest.fixture(scope="module")
def app() -> Celery:
    app = Celery("metrics-test", broker="memory://", backend="cache+memory://")

    @app.task(name="test.ok")
    def ok() -> dict:
        return {"stored": 3}

    @app.task(name="test.fails")
    def fails() -> None:
        raise ValueError("bad input")

    @app.task(name="lucidrec.encode.slices")  # counts the slices its results say it stored
    def encode() -> dict:
        return {"stored": 4, "failed": []}

    return app


def test_task_outcomes_are_counted_per_task_from_celery_signals(app: Celery) -> None:
    metrics = task_metrics()
    before = {
        "ok": value(metrics, "lucidrec_tasks_succeeded_total", task="test.ok"),
        "fails": value(
            metrics, "lucidrec_task_failures_total", task="test.fails", exception="ValueError"
        ),
        "slices": value(metrics, "lucidrec_slices_encoded_total"),
    }
    app.tasks["test.ok"].apply()
    app.tasks["test.ok"].apply()
    assert app.tasks["test.fails"].apply().failed()
    app.tasks["lucidrec.encode.slices"].apply()
    assert value(metrics, "lucidrec_tasks_succeeded_total", task="test.ok") == before["ok"] + 2
    failures = value(
        metrics, "lucidrec_task_failures_total", task="test.fails", exception="ValueError"
    )
    assert failures == before["fails"] + 1
    assert value(metrics, "lucidrec_tasks_succeeded_total", task="test.fails") == 0
    # only the encode task's result counts slices (test.ok's "stored" does not)
    assert value(metrics, "lucidrec_slices_encoded_total") == before["slices"] + 4


def test_frames_are_counted_from_the_encoder_s_cumulative_stats() -> None:
    metrics, stats = TaskMetrics(), FrameStats()
    stats.record(3, ["corrupt: not an image", "oversized: 9000x9000 pixels"])
    stats.ignore(2)
    metrics.observe_frames(stats)
    metrics.observe_frames(stats)  # nothing new: nothing counted twice
    stats.record(1, ["corrupt: truncated"])
    metrics.observe_frames(stats)
    assert value(metrics, "lucidrec_frames_used_total") == 4
    assert value(metrics, "lucidrec_frames_dropped_total", reason="corrupt") == 2
    assert value(metrics, "lucidrec_frames_dropped_total", reason="oversized") == 1
    assert value(metrics, "lucidrec_frames_ignored_total") == 2


def test_a_prefork_pool_serves_the_sum_of_its_children_including_the_exited_ones() -> None:
    """In a fresh interpreter (multiprocess mode is process-wide): two forked children count
    tasks and exit; the parent's registry sums their files."""
    script = textwrap.dedent(
        """
        import multiprocessing
        from workers import metrics as wm

        registry = wm.worker_registry(prefork=True, folder=wm.enable_multiprocess())

        def child(n):
            m = wm.task_metrics()
            for _ in range(n):
                m.succeeded.labels("lucidrec.encode.slices").inc()
            m.failures.labels("lucidrec.encode.slices", "TypeError").inc()

        ctx = multiprocessing.get_context("fork")
        children = [ctx.Process(target=child, args=(n,)) for n in (2, 3)]
        for c in children:
            c.start()
        for c in children:
            c.join()
        task = {"task": "lucidrec.encode.slices"}
        print(registry.get_sample_value("lucidrec_tasks_succeeded_total", task))
        print(registry.get_sample_value(
            "lucidrec_task_failures_total", task | {"exception": "TypeError"}))
        print(registry.get_sample_value("lucidrec_pool_processes"))
        print(registry.get_sample_value("lucidrec_pool_cpu_seconds_total") >= 0)
        print(registry.get_sample_value("process_cpu_seconds_total") is not None)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.split() == ["5.0", "2.0", "0.0", "True", "True"], out.stderr
