"""``lucidrec worker``: run a Celery worker for the encode, train and maintenance queues."""

from __future__ import annotations

import click

from api.cli.context import AppContext
from api.cli.processes import die_with_parent
from workers.runner import parse_queues, run_worker


@click.command()
@click.option(
    "--queues",
    default="encode,train,maintenance",
    show_default=True,
    help="Comma-separated queues to consume (encode, train, maintenance).",
)
@click.option(
    "--concurrency",
    type=int,
    help="Encode processes (default: settings). A worker with 'train' runs one.",
)
@click.option(
    "--beat",
    is_flag=True,
    help="Also schedule periodic maintenance. Run exactly one worker with --beat.",
)
@click.option("--loglevel", default="INFO", show_default=True, help="Celery log level.")
@click.option(
    "--parent-pid",
    type=int,
    hidden=True,
    help="serve's pid: stop (SIGTERM) when that parent dies (api.cli.supervisor).",
)
@click.pass_obj
def worker(
    app: AppContext,
    queues: str,
    concurrency: int | None,
    beat: bool,
    loglevel: str,
    parent_pid: int | None,
) -> None:
    """Start a worker. The train queue has exactly one consumer (enforced by a lease)."""
    if parent_pid is not None:
        die_with_parent(parent_pid)
    run_worker(app.settings, parse_queues(queues), concurrency, beat=beat, loglevel=loglevel)
