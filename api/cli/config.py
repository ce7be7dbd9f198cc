"""``lucidrec config``: show and check the effective settings and the experiments file."""

from __future__ import annotations

from pathlib import Path

import click
import msgspec
import yaml

from api.cli.context import AppContext
from configs import load_experiments


@click.group()
def config() -> None:
    """Inspect the effective settings."""


@config.command("show")
@click.pass_obj
def show(app: AppContext) -> None:
    """Print the effective settings (profile + environment) as YAML."""
    settings = app.settings
    click.echo(yaml.safe_dump(msgspec.to_builtins(settings), sort_keys=False), nl=False)


@config.command("check-experiments")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path), required=False)
@click.pass_obj
def check_experiments(app: AppContext, path: Path | None) -> None:
    """Validate an experiments file (default: the configured experiments_file)."""
    settings = app.settings
    path = path or (Path(settings.experiments_file) if settings.experiments_file else None)
    if path is None:
        raise click.UsageError("no PATH given and no experiments_file configured")
    parsed = load_experiments(path, settings)
    for experiment in parsed.experiments:
        total = sum(v.weight for v in experiment.variants)
        split = ", ".join(f"{v.name} {v.weight / total:.0%}" for v in experiment.variants)
        state = "on" if experiment.enabled else "off"
        click.echo(f"{experiment.name} ({state}): {split}")
    click.echo(f"{path}: {len(parsed.experiments)} experiment(s), valid")
