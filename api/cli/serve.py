"""``lucidrec serve``: the API and one embedded worker on the embedded default."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys

import click

from api.cli.context import AppContext


def _die_with_parent() -> None:
    """In the embedded worker (Linux): get SIGTERM when ``serve`` dies, even by SIGKILL."""
    with contextlib.suppress(OSError):  # not Linux: the worker is stopped by serve's finally
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@click.command()
@click.option("--host", help="Bind address (default: settings api.host).")
@click.option("--port", type=int, help="Port (default: settings api.port).")
@click.option("--demo", is_flag=True, help="Seed a demo catalog if the catalog is empty.")
@click.option("--no-worker", is_flag=True, help="Do not start the embedded worker.")
@click.option(
    "--config",
    "config_name",
    metavar="PROFILE|FILE",
    help="Settings profile or YAML file for the API and its worker (as `lucidrec --config`).",
)
@click.pass_obj
def serve(
    app: AppContext,
    host: str | None,
    port: int | None,
    demo: bool,
    no_worker: bool,
    config_name: str | None,
) -> None:
    """Start the API (uvicorn) and one embedded worker for all queues (with the scheduler)."""
    import uvicorn

    app.use_config(config_name)
    from api.app import create_app
    from api.demo import seed_demo
    from workers.celery_app import create_celery

    settings = app.settings
    os.makedirs(settings.data_dir, exist_ok=True)
    host, port = host or settings.api.host, port or settings.api.port
    worker = None
    if not no_worker:
        env = dict(os.environ)
        if app.config:
            env["LUCIDREC_CONFIG"] = app.config
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "api.cli",
                "worker",
                "--queues",
                "encode,train,maintenance",
                "--beat",
                "--loglevel",
                "WARNING",
            ],
            env=env,
        )
    try:
        if demo and seed_demo(settings, create_celery(settings)):
            click.echo("demo catalog seeded: 36 rooms, 360 slices, a first codebook and model")
        click.echo(
            f"\nlucidrec serves on http://{host}:{port} (OpenAPI: /schema). Try:\n"
            f"  curl -s -X POST http://{host}:{port}/v1/rank -H 'content-type: application/json'"
            ' -d \'{"user_id": "demo-user-0", "k": 5}\'\n'
        )
        # access_log off: the request-id middleware writes one structured line per request
        uvicorn.run(create_app(settings), host=host, port=port, log_level="info", access_log=False)
    finally:
        if worker is not None:
            worker.terminate()
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
