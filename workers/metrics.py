"""Prometheus metrics of the workers, served by each worker on ``workers.metrics_port``.

What a worker counts:

- every worker: task outcomes per task name, from Celery's ``task_success``,
  ``task_failure`` and ``task_retry`` signals (:class:`TaskMetrics`); an encode
  worker also the slices it stored and its encoder's frames (used, dropped by reason,
  ignored by a text-only encoder), read from the encoder's
  :class:`encoder.images.FrameStats` after each task;
- the train worker: how far each variant has trained, the events it trained, holds
  parked, dropped and dead-lettered (:class:`TrainMetrics`). Gauges are set from the
  catalog after each chunk, so they are right after a restart too; counters count
  from the process's start, as Prometheus counters do;
- the process: CPU, memory, open files; for a prefork pool its children's too.

The signal handlers connect when this module is imported, which
:mod:`workers.runner` does, so every worker counts.

**One port per worker, and multiprocess files inside a prefork pool.** Each
``lucidrec worker`` serves ``/metrics`` from its main process on
``workers.metrics_port`` (:func:`serve_worker_metrics`; give each worker on a host
its own port, ``LUCIDREC_WORKERS__METRICS_PORT``). How the main process learns the
counts depends on the pool:

- The trainer runs the solo pool: tasks run in the main process, so plain in-memory
  metrics (the trainer's gauges, an ``Info``, custom collectors) are served as they
  are. Multiprocess mode would lose them (no ``Info``, no custom collectors, gauges
  reduced to a per-process mode) for nothing.
- An encode worker with ``--concurrency N`` runs its tasks in N prefork children,
  which are replaced when they die or are recycled, and take any of them as a task
  comes. A port per child would give Prometheus a moving set of targets, each
  count lost with its child. So the main process makes a private folder, names it in
  ``PROMETHEUS_MULTIPROC_DIR`` before it forks, and each child writes its counters
  to a memory-mapped file there; the main process sums the files of every child,
  the dead ones' included, so the counts survive a child's replacement. The folder
  goes when the worker exits: a restarted worker counts from 0, as any restarted
  process does.

One port per worker, rather than one multiprocess folder per host, keeps workers
independent: no shared folder to clean, and a worker that died is a target that
is down, which Prometheus's ``up`` shows. The API's ``lucidrec_live_workers`` (from
the catalog's heartbeats) shows it too, without a scrape of the worker.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from typing import Any

from celery.signals import task_failure, task_postrun, task_retry, task_success, worker_process_init
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    PlatformCollector,
    ProcessCollector,
    start_http_server,
    values,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
ENCODE_TASK = "lucidrec.encode.slices"


class TrainMetrics:
    """The trainer's metrics (its own registry, so that each trainer pool starts afresh)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.parked = Gauge(
            "lucidrec_parked_events",
            "Events waiting for their room's codes",
            ["variant"],
            registry=self.registry,
        )
        self.parked_dropped = Counter(
            "lucidrec_parked_dropped",
            "Parked events dropped past a bound (workers.parked_max_events or _age_s)",
            ["variant", "bound"],
            registry=self.registry,
        )
        self.dead_letters = Counter(
            "lucidrec_dead_letters",
            "Logged events the trainer could not train (kept in the dead_letters table)",
            ["variant"],
            registry=self.registry,
        )
        self.trained = Counter(
            "lucidrec_events_trained",
            "Events trained (from the log, or released from parking)",
            ["variant"],
            registry=self.registry,
        )
        self.log_position = Gauge(
            "lucidrec_event_log_position",
            "The event log position each variant has trained up to",
            ["variant"],
            registry=self.registry,
        )
        self.log_head = Gauge(
            "lucidrec_event_log_head", "The newest event log position", registry=self.registry
        )
        _EXPOSED.attach("train", self.registry)

    def serve(self, port: int) -> None:
        """Serve this process's worker metrics on ``port``, unless they already are."""
        serve_worker_metrics(port, prefork=False)


class TaskMetrics:
    """Task outcomes, slices stored and frames, in the process that runs the tasks."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.succeeded = Counter(
            "lucidrec_tasks_succeeded",
            "Tasks that succeeded, by task name",
            ["task"],
            registry=self.registry,
        )
        self.failures = Counter(
            "lucidrec_task_failures",
            "Tasks that failed (an error, a time limit; not retried), by task name and error",
            ["task", "exception"],
            registry=self.registry,
        )
        self.retries = Counter(
            "lucidrec_task_retries",
            "Tasks retried after a transient error, by task name",
            ["task"],
            registry=self.registry,
        )
        self.slices_encoded = Counter(
            "lucidrec_slices_encoded",
            "New slices encoded and stored by encode tasks",
            registry=self.registry,
        )
        self.frames_used = Counter(
            "lucidrec_frames_used",
            "Frames the encoder encoded",
            registry=self.registry,
        )
        self.frames_dropped = Counter(
            "lucidrec_frames_dropped",
            "Frames the encoder dropped (the slice encoded from the rest), by reason",
            ["reason"],
            registry=self.registry,
        )
        self.frames_ignored = Counter(
            "lucidrec_frames_ignored",
            "Frames ignored because the encoder has no vision tower (text-only)",
            registry=self.registry,
        )
        self._frames: dict[int, dict[str, Any]] = {}  # id(FrameStats) -> counts already counted
        self._lock = threading.Lock()

    def observe_frames(self, stats: Any) -> None:
        """Count what an encoder's cumulative :class:`FrameStats` added since the last call."""
        now = stats.as_dict()
        with self._lock:
            last = self._frames.get(id(stats), {"used": 0, "ignored": 0, "dropped": {}})
            self._frames[id(stats)] = now
        self.frames_used.inc(max(0, now["used"] - last["used"]))
        self.frames_ignored.inc(max(0, now["ignored"] - last["ignored"]))
        for reason, count in now["dropped"].items():
            added = count - last["dropped"].get(reason, 0)
            if added > 0:
                self.frames_dropped.labels(reason).inc(added)


_TASKS: TaskMetrics | None = None
_TASKS_LOCK = threading.Lock()


def task_metrics() -> TaskMetrics:
    """This process's :class:`TaskMetrics`, made on first use (in a prefork child: after the
    fork, so that its values go to the child's multiprocess file)."""
    global _TASKS
    with _TASKS_LOCK:
        if _TASKS is None:
            _TASKS = TaskMetrics()
            _EXPOSED.attach("tasks", _TASKS.registry)
        return _TASKS


@worker_process_init.connect
def _child_started(**_: object) -> None:
    """A prefork child writes its (zero) counters at once, so they show before any task."""
    task_metrics()


@task_success.connect
def _task_succeeded(sender: Any = None, result: Any = None, **_: object) -> None:
    name = getattr(sender, "name", None) or "unknown"
    metrics = task_metrics()
    metrics.succeeded.labels(name).inc()
    if name == ENCODE_TASK and isinstance(result, dict):
        stored = result.get("stored")
        if isinstance(stored, int) and stored > 0:
            metrics.slices_encoded.inc(stored)


@task_failure.connect
def _task_failed(sender: Any = None, exception: BaseException | None = None, **_: object) -> None:
    name = getattr(sender, "name", None) or "unknown"
    task_metrics().failures.labels(name, type(exception).__name__).inc()


@task_retry.connect
def _task_retried(sender: Any = None, **_: object) -> None:
    task_metrics().retries.labels(getattr(sender, "name", None) or "unknown").inc()


@task_postrun.connect
def _task_ran(sender: Any = None, **_: object) -> None:
    """After an encode task, count the frames its encoder saw (the encoder is loaded once
    per process, on first use, and keeps cumulative counts)."""
    encoder = vars(sender).get("encoder") if hasattr(sender, "__dict__") else None
    stats = getattr(encoder, "frame_stats", None)
    if stats is not None:
        task_metrics().observe_frames(stats)


class _Attached(Collector):
    """The registries this process's metrics live in, attached as they are made."""

    def __init__(self) -> None:
        self._registries: dict[str, CollectorRegistry] = {}
        self._lock = threading.Lock()

    def attach(self, name: str, registry: CollectorRegistry) -> None:
        with self._lock:
            self._registries[name] = registry

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            registries = list(self._registries.values())
        for registry in registries:
            yield from registry.collect()


class PoolCollector(Collector):
    """CPU and memory of a prefork pool's children, which the main process's
    ``process_*`` metrics leave out (Linux ``/proc``; nothing elsewhere)."""

    def __init__(self, pid: int | None = None) -> None:
        self.pid = pid or os.getpid()
        self._ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self._page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

    def children(self) -> list[tuple[float, int]]:
        """(CPU seconds, resident bytes) of each live child."""
        found = []
        try:
            entries = os.listdir("/proc")
        except OSError:
            return []
        for entry in entries:
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat", "rb") as fh:
                    fields = fh.read().rsplit(b")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[1]) != self.pid:  # fields[1] is the parent's pid
                continue
            cpu = (int(fields[11]) + int(fields[12])) / self._ticks  # utime, stime
            found.append((cpu, int(fields[21]) * self._page))  # rss in pages
        return found

    def collect(self) -> Iterator[Metric]:
        if not os.path.isdir("/proc"):
            return
        live = self.children()
        reaped = os.times()
        cpu = CounterMetricFamily(
            "lucidrec_pool_cpu_seconds",
            "CPU seconds of the worker's pool children, live and exited",
        )
        cpu.add_metric([], reaped.children_user + reaped.children_system + sum(c for c, _ in live))
        yield cpu
        memory = GaugeMetricFamily(
            "lucidrec_pool_resident_memory_bytes", "Resident memory of the live pool children"
        )
        memory.add_metric([], float(sum(m for _, m in live)))
        yield memory
        processes = GaugeMetricFamily("lucidrec_pool_processes", "Live pool children")
        processes.add_metric([], float(len(live)))
        yield processes


_EXPOSED = _Attached()
_SERVING: int | None = None  # the port this process serves its worker metrics on
_SERVING_LOCK = threading.Lock()


def worker_registry(*, prefork: bool, folder: str | None = None) -> CollectorRegistry:
    """What a worker serves: its own metrics (solo), or the sum of its children's
    multiprocess files in ``folder`` (prefork); with process metrics either way."""
    registry = CollectorRegistry(auto_describe=False)
    if prefork:
        assert folder is not None
        MultiProcessCollector(registry, folder)
        registry.register(PoolCollector())
    else:
        registry.register(_EXPOSED)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    return registry


def enable_multiprocess() -> str:
    """Make the metrics this process and its future children create write to files in a
    fresh private folder (removed at exit); returns the folder. Call it before the pool
    forks and before any task metric is made."""
    folder = tempfile.mkdtemp(prefix="lucidrec-metrics-")
    owner = os.getpid()

    def remove() -> None:
        if os.getpid() == owner:  # not a child that exits through atexit
            shutil.rmtree(folder, ignore_errors=True)

    atexit.register(remove)
    os.environ[MULTIPROC_ENV] = folder
    values.ValueClass = values.MultiProcessValue()  # what the env var does at import
    return folder


def serve_worker_metrics(port: int | None, *, prefork: bool) -> bool:
    """Serve this worker's ``/metrics`` on ``port`` from a background thread (see the
    module docstring); once per process. False when not served: no port, or the port is
    taken (logged; the worker runs on without its metrics)."""
    global _SERVING
    if port is None:
        return False
    with _SERVING_LOCK:
        if _SERVING is not None:
            if port != _SERVING:
                logger.warning("worker metrics already served on port %d, not %d", _SERVING, port)
            return port == _SERVING
        if prefork:
            registry = worker_registry(prefork=True, folder=enable_multiprocess())
        else:
            task_metrics()  # its counters show from the start
            registry = worker_registry(prefork=False)
        try:
            start_http_server(port, registry=registry)
        except OSError as exc:
            logger.error(
                "cannot serve worker metrics on port %d (workers.metrics_port): %s", port, exc
            )
            return False
        _SERVING = port
        logger.info("worker metrics on port %d (%s)", port, "prefork" if prefork else "solo")
        return True
