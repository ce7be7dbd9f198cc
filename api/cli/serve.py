"""``lucidrec serve``: the API and one embedded worker on the embedded default."""

from __future__ import annotations

import os
import socket
import sys
import threading

import click

from api.cli.context import AppContext
from api.cli.processes import APP, StartupError, serve_processes
from api.cli.supervisor import WorkerSupervisor


@click.command()
@click.option("--host", help="Bind address (default: settings api.host).")
@click.option("--port", type=int, help="Port (default: settings api.port).")
@click.option(
    "--demo",
    is_flag=True,
    help="Run the demo world: live rooms and synthetic viewers, all through this API.",
)
@click.option(
    "--reset",
    is_flag=True,
    help="With --demo: delete data_dir's catalog, broker, results and models first.",
)
@click.option("--no-worker", is_flag=True, help="Do not start the embedded worker.")
@click.option(
    "--workers",
    "processes",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="API processes on the one port; more than 1 needs api.shared_state_url (Redis).",
)
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
    reset: bool,
    no_worker: bool,
    processes: int,
    config_name: str | None,
) -> None:
    """Start the API and one embedded worker for all queues (with the scheduler); the
    worker is started again whenever it dies.

    With --workers N, N API processes serve the port and share in-session state
    through api.shared_state_url.

    \f
    Each API process has its own listener in one SO_REUSEPORT group, so the kernel
    spreads connections over them (:mod:`api.cli.processes`); each builds its own
    services from the same settings.
    """
    import uvicorn

    app.use_config(config_name)
    if processes > 1 and not app.settings.api.shared_state_url:
        raise click.UsageError(
            f"--workers {processes} needs api.shared_state_url (a redis:// URL, e.g. "
            "LUCIDREC_API__SHARED_STATE_URL=redis://127.0.0.1:6379/2): without it each "
            "process would see only the events that reached it"
        )
    if reset and not demo:
        raise click.UsageError("--reset deletes the service's state: it goes with --demo only")
    from api.app import create_app
    from api.demo import ResetRefusedError, client_url, reset_demo, run_demo

    settings = app.settings
    if reset:  # before the worker (or anything) opens the stores
        try:
            deleted = reset_demo(settings)
        except ResetRefusedError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"demo reset: {len(deleted)} paths deleted under {settings.data_dir}")
    os.makedirs(settings.data_dir, exist_ok=True)
    host, port = host or settings.api.host, port or settings.api.port
    worker = None
    if not no_worker:  # restarted whenever it dies (api.cli.supervisor)
        env = dict(os.environ)
        if app.config:
            env["LUCIDREC_CONFIG"] = app.config
        argv = [sys.executable, "-m", "api.cli", "worker", "--queues", "encode,train,maintenance"]
        argv += ["--beat", "--loglevel", "WARNING", "--parent-pid", str(os.getpid())]
        worker = WorkerSupervisor(argv, env)
        worker.start()
    halt = threading.Event()
    try:
        if demo:  # an HTTP client of this API, from the moment it answers /health
            key = settings.api.api_keys[0] if settings.api.api_keys else None
            args = (client_url(host, port), key, settings, halt)
            threading.Thread(target=run_demo, args=args, name="demo", daemon=True).start()
            click.echo("demo: live rooms and viewers start once the API answers (see the log)")
        click.echo(
            f"\nlucidrec serves on http://{host}:{port} (OpenAPI: /schema). Try:\n"
            f"  curl -s -X POST http://{host}:{port}/v1/rank -H 'content-type: application/json'"
            ' -d \'{"user_id": "demo-user-0", "k": 5}\'\n'
        )
        # access_log off: the request-id middleware writes one structured line per request
        options = {"host": host, "port": port, "log_level": "info", "access_log": False}
        if processes == 1:
            uvicorn.run(create_app(settings), **options)
        else:  # each process loads the same settings: the profile goes through the environment
            if app.config:
                os.environ["LUCIDREC_CONFIG"] = app.config
            if hasattr(socket, "SO_REUSEPORT"):
                serve_processes(options, processes)
            else:  # no listener groups here: uvicorn's processes on one shared socket
                uvicorn.run(APP, factory=True, workers=processes, **options)
    except StartupError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        halt.set()
        if worker is not None:
            worker.stop()
