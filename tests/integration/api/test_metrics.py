"""The metrics a dashboard needs, from a real ``lucidrec serve`` and its embedded worker.

One server for the module (as :mod:`tests.integration.api.conftest` builds it), whose
embedded worker (the solo trainer, consuming every queue) serves its metrics on
``workers.metrics_port``. The counters move as the routes and tasks say they should;
the sync lag is 0 once the server applied the newest files and the trainer is idle; and
every metric that ``deploy/grafana/lucidrec.json`` and ``deploy/prometheus/alerts.yml``
name is exported by a real registry.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from configs import Settings, load_settings
from tests.integration.api.conftest import (
    AUTH,
    EXPERIMENTS,
    TOPICS,
    api_env,
    engagements,
    seed,
    start_server,
    stop,
    wait_until,
)
from tests.integration.services import free_port
from workers.celery_app import create_celery
from workers.metrics import PoolCollector, TaskMetrics, TrainMetrics, worker_registry

ROOT = Path(__file__).resolve().parents[3]
DASHBOARD = ROOT / "deploy" / "grafana" / "lucidrec.json"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
ROOMS = [f"{t}{r}" for t in TOPICS for r in range(6)]
# series Prometheus makes itself, not an exporter
PROMETHEUS_SERIES = {"up"}


@dataclass
class Metered:
    url: str
    worker_port: int
    settings: Settings

    def api(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        return samples(httpx.get(f"{self.url}/metrics", timeout=30).text)

    def worker(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        return samples(worker_text(self.worker_port))


def worker_text(port: int) -> str:
    return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=30).text


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def get(found: dict, name: str, **labels: str) -> float:
    """A sample's value, 0 while the series does not exist yet."""
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture(scope="module")
def metered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Metered]:
    data = tmp_path_factory.mktemp("metrics")
    (data / "experiments.yaml").write_text(EXPERIMENTS)
    worker_port = free_port()
    env = api_env(data, LUCIDREC_WORKERS__METRICS_PORT=str(worker_port))
    url, proc = start_server(env, data / "serve.log")
    settings = load_settings(env=env)
    try:
        with httpx.Client(base_url=url, timeout=30) as c:
            seed(c, settings)
        wait_until(lambda: _answers(worker_port), timeout=60)
        yield Metered(url, worker_port, settings)
    finally:
        stop(proc)


def _answers(port: int) -> bool:
    try:
        return "lucidrec_event_log_position" in worker_text(port)
    except httpx.HTTPError:
        return False


def variants_of(metered: Metered) -> list[str]:
    return sorted(httpx.get(f"{metered.url}/v1/model", timeout=30).json()["variants"])


def idle(metered: Metered) -> None:
    """Wait until the trainer has trained the whole log and published nothing for 2 s."""
    wait_until(
        lambda: all(
            get(metered.worker(), "lucidrec_event_log_position", variant=v)
            == get(metered.api(), "lucidrec_event_log_head")
            for v in variants_of(metered)
        ),
        timeout=120,
        interval=0.5,
    )

    def steps() -> dict:
        model = httpx.get(f"{metered.url}/v1/model", timeout=30).json()["variants"]
        return {v: (m["step"], m["sparse"], m["dense"], m["run"]) for v, m in model.items()}

    last = {"steps": None, "since": time.monotonic()}

    def settled() -> bool:
        now = steps()
        if now != last["steps"]:
            last["steps"], last["since"] = now, time.monotonic()
        return time.monotonic() - last["since"] >= 2.0

    wait_until(settled, timeout=120, interval=0.25)


def test_events_accepted_duplicates_and_trained_are_counted(metered: Metered) -> None:
    variants = variants_of(metered)
    idle(metered)
    api, worker = metered.api(), metered.worker()
    events = engagements(range(100, 103), ROOMS, 7)  # 36 new events
    with httpx.Client(base_url=metered.url, timeout=30) as c:
        first = c.post("/v1/events", headers=AUTH, json={"events": events}).json()
        again = c.post("/v1/events", headers=AUTH, json={"events": events[:10]}).json()
    assert (first["accepted"], again["duplicates"]) == (36, 10)
    after = metered.api()
    assert (
        get(after, "lucidrec_events_accepted_total")
        == get(api, "lucidrec_events_accepted_total") + 36
    )
    assert (
        get(after, "lucidrec_events_duplicates_total")
        == get(api, "lucidrec_events_duplicates_total") + 10
    )
    assert get(after, "lucidrec_event_log_head") == get(api, "lucidrec_event_log_head") + 36
    # each variant trains every event once; then the training lag (head - position) is 0
    for variant in variants:
        wait_until(
            lambda v=variant: (
                get(metered.worker(), "lucidrec_events_trained_total", variant=v)
                == get(worker, "lucidrec_events_trained_total", variant=v) + 36
            ),
            timeout=120,
            interval=0.5,
        )
    worker = metered.worker()
    head = get(metered.api(), "lucidrec_event_log_head")
    for variant in variants:
        assert get(worker, "lucidrec_event_log_position", variant=variant) == head
        assert get(worker, "lucidrec_dead_letters_total", variant=variant) == 0
        assert get(worker, "lucidrec_parked_events", variant=variant) == 0


def test_encode_failures_frames_and_task_failures_are_counted(metered: Metered) -> None:
    encode = "lucidrec.encode.slices"
    api, worker = metered.api(), metered.worker()
    png = base64.b64encode(_png()).decode()
    garbage = base64.b64encode(b"\x89PNG\r\n\x1a\n garbage").decode()
    posted = [
        {"slice_id": "framed-0", "ts": 2000.0, "title": "framed", "frames": [{"data": png}]},
        {"slice_id": "framed-1", "ts": 2001.0, "title": "bad frame", "frames": [{"data": garbage}]},
    ]
    with httpx.Client(base_url=metered.url, timeout=30) as c:
        response = c.post("/v1/rooms/framed/slices", headers=AUTH, json={"slices": posted})
        task = response.json()["task_id"]
        wait_until(lambda: c.get(f"/v1/tasks/{task}").json()["state"] == "SUCCESS", 120)
        result = c.get(f"/v1/tasks/{task}").json()["result"]
    assert result["stored"] == 1 and [f["slice_id"] for f in result["failed"]] == ["framed-1"]
    # a payload that is not a list of slices fails its task (no retry)
    app = create_celery(metered.settings)
    bad = app.send_task(encode, args=["framed", "not a list"], queue="encode")
    wait_until(lambda: bad.state == "FAILURE", 120, interval=0.2)
    after_api, after = metered.api(), metered.worker()
    assert (
        get(after_api, "lucidrec_encode_failures_total")
        == get(api, "lucidrec_encode_failures_total") + 1
    )
    assert (
        get(after, "lucidrec_tasks_succeeded_total", task=encode)
        == get(worker, "lucidrec_tasks_succeeded_total", task=encode) + 1
    )
    failures = ("lucidrec_task_failures_total", {"task": encode, "exception": "TypeError"})
    assert get(after, failures[0], **failures[1]) == get(worker, failures[0], **failures[1]) + 1
    assert (
        get(after, "lucidrec_slices_encoded_total")
        == get(worker, "lucidrec_slices_encoded_total") + 1
    )
    # the good slice's frame: encoded by a vision tower, or ignored by a text-only encoder
    frames = (
        "lucidrec_frames_ignored_total"
        if metered.settings.encoder.vision.path is None
        else "lucidrec_frames_used_total"
    )
    assert get(after, frames) == get(worker, frames) + 1


def test_model_versions_codebook_workers_and_process_metrics(metered: Metered) -> None:
    idle(metered)
    model = httpx.get(f"{metered.url}/v1/model", timeout=30).json()
    api = metered.api()
    for variant, served in model["variants"].items():
        info = {"variant": variant, "run": served["run"], "snapshot": str(served["snapshot"])}
        assert get(api, "lucidrec_served_model_info", **info) == 1.0
        assert get(api, "lucidrec_served_model_step", variant=variant) == served["step"]
        assert get(
            api, "lucidrec_served_model_published_timestamp_seconds", variant=variant
        ) == pytest.approx(served["published_at"])
    assert get(api, "lucidrec_codebook_info", version=model["codebook_version"]) == 1.0
    # serve's embedded worker consumes every queue
    for queue in ("encode", "train", "maintenance"):
        assert get(api, "lucidrec_live_workers", queue=queue) == 1.0
    worker = metered.worker()
    for found in (api, worker):
        assert get(found, "process_cpu_seconds_total") > 0
        assert get(found, "process_resident_memory_bytes") > 0
        assert any(name == "python_info" for name, _ in found)


def test_sync_lag_is_zero_once_the_newest_files_are_applied_and_the_trainer_is_idle(
    metered: Metered,
) -> None:
    idle(metered)
    variants = variants_of(metered)

    def lags() -> dict[str, float]:
        api = metered.api()
        return {v: get(api, "lucidrec_sync_lag_seconds", variant=v) for v in variants}

    wait_until(lambda: set(lags().values()) == {0.0}, timeout=30, interval=0.2)
    time.sleep(3.0)  # idle: the newest update ages, nothing waits
    assert lags() == dict.fromkeys(variants, 0.0)
    ages = httpx.get(f"{metered.url}/v1/model", timeout=30).json()["variants"]
    assert all(ages[v]["lag_s"] >= 3.0 for v in variants)  # what the lag measured before


# --- the dashboard and the alerts name only metrics that exist ----------------------------

KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan"}
GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression (with Grafana's $variables) selects."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)  # strings
    expr = re.sub(r"\$\{[^}]*\}|\$\w+", "1", expr)  # Grafana variables
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # ranges and subqueries
    expr = GROUPING.sub(" ", expr)
    names = set()
    for match in re.finditer(r"(?<![\w.])([A-Za-z_:][\w:]*)(\s*\()?", expr):
        if match[2] is None and match[1] not in KEYWORDS:
            names.add(match[1])
    return names


def test_metric_names_are_extracted_from_promql() -> None:
    expr = (
        "histogram_quantile(0.99, sum by (le, variant) (rate(lucidrec_request_seconds_bucket"
        '{route="/v1/rank", x=~"a|b"}[$__rate_interval]))) > 0.5 and on (variant) '
        "scalar(max(lucidrec_event_log_head)) - min without (job) (lucidrec_event_log_position)"
        ' unless deriv(foo:bar[15m:1m]) > 1 or up{job=~"lucidrec.*"} == 0'
    )
    assert metric_names(expr) == {
        "lucidrec_request_seconds_bucket",
        "lucidrec_event_log_head",
        "lucidrec_event_log_position",
        "foo:bar",
        "up",
    }


def dashboard_exprs() -> list[str]:
    found: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "expr" and isinstance(value, str):
                    found.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(json.loads(DASHBOARD.read_text()))
    return found


def alert_exprs() -> list[str]:
    rules = yaml.safe_load(ALERTS.read_text())
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


def exported(text: str) -> set[str]:
    """Every sample name the exposition ``text`` can carry, from each family's type (a
    labelled metric with no series yet still has its HELP and TYPE)."""
    suffixes = {
        "counter": ("_total", "_created"),
        "gauge": ("",),
        "histogram": ("_bucket", "_count", "_sum", "_created"),
        "summary": ("", "_count", "_sum", "_created"),
        "info": ("_info",),
        "unknown": ("",),
    }
    names = set()
    for family in text_string_to_metric_families(text):
        names |= {family.name + suffix for suffix in suffixes.get(family.type, ("",))}
        names |= {s.name for s in family.samples}
    return names


def worker_registries() -> list[CollectorRegistry]:
    """Everything a worker exports: the trainer's and the tasks' metrics, the process
    collectors (solo), and a prefork pool's collector."""
    pool = CollectorRegistry()
    pool.register(PoolCollector())
    return [TrainMetrics().registry, TaskMetrics().registry, worker_registry(prefork=False), pool]


def test_the_dashboard_and_the_alerts_name_only_exported_metrics(metered: Metered) -> None:
    api = exported(httpx.get(f"{metered.url}/metrics", timeout=30).text)
    worker = exported(worker_text(metered.worker_port))
    for registry in worker_registries():
        worker |= exported(generate_latest(registry).decode())
    known = api | worker | PROMETHEUS_SERIES
    for source, exprs in (("dashboard", dashboard_exprs()), ("alerts", alert_exprs())):
        assert len(exprs) >= 10, source
        named = set()
        for expr in exprs:
            names = metric_names(expr)
            assert names, f"{source}: no metric in {expr!r}"
            unknown = names - known
            assert not unknown, f"{source}: {sorted(unknown)} in {expr!r} are exported by nobody"
            named |= names
        if source == "dashboard":
            for needed in (
                "lucidrec_requests_total",
                "lucidrec_request_seconds_bucket",
                "lucidrec_events_accepted_total",
                "lucidrec_events_trained_total",
                "lucidrec_parked_events",
                "lucidrec_dead_letters_total",
                "lucidrec_event_log_head",
                "lucidrec_event_log_position",
                "lucidrec_sync_lag_seconds",
                "lucidrec_queue_depth",
                "lucidrec_encode_failures_total",
                "lucidrec_task_failures_total",
                "lucidrec_served_model_info",
                "lucidrec_codebook_info",
                "process_cpu_seconds_total",
                "process_resident_memory_bytes",
            ):
                assert needed in named, f"the dashboard does not show {needed}"


def _png() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 90, 160)).save(buf, format="PNG")
    return buf.getvalue()
