"""``lucidrec eval replay``: the offline replay evaluation on a dataset folder."""

from __future__ import annotations

from pathlib import Path

import click

from api.cli.context import AppContext


@click.group("eval")
def evaluation() -> None:
    """Offline evaluation of the ranker variants on logged data."""


@evaluation.command()
@click.option(
    "--dataset",
    "kind",
    required=True,
    type=click.Choice(["movielens-tmdb", "interactions"]),
    help="Dataset adapter (see docs/evaluation.md: dataset formats).",
)
@click.option(
    "--data-dir",
    required=True,
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="The dataset folder.",
)
@click.option(
    "--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Report folder."
)
@click.option(
    "--variants",
    default="id_only,lucid_only,hybrid,staged,random_codes,stats_only,dense_content,popularity",
    show_default=True,
    help="Comma-separated variants to replay, in this order; lucid_unigram, multimodal and "
    "lucid_q2i are available on request. Each variant is compared with id_only when both run.",
)
@click.option(
    "--seed",
    default=0,
    show_default=True,
    help="Seed of codes, sampled impressions, probes, models and bootstrap.",
)
@click.option(
    "--label-threshold",
    default=4.0,
    show_default=True,
    help="A rating at or above this is a positive.",
)
@click.option("--levels", default=3, show_default=True, help="LUCID levels L of the codebook.")
@click.option(
    "--codes",
    default=16,
    show_default=True,
    help="Codes per level N (a few per hundred items; the fit needs at least N items).",
)
@click.option(
    "--negatives",
    default=4,
    show_default=True,
    type=click.IntRange(min=0),
    help="Sampled impressions (label 0) per logged event: rooms available then whose item the "
    "user never touched. Models learn from them; event metrics stay over logged events.",
)
@click.option(
    "--room-window",
    type=click.FloatRange(min=0, min_open=True),
    help="Live regime: cut time into slots of this many seconds (from the Unix epoch); an "
    "item's events in one slot form a room, live for the whole slot. Default: one room per "
    "item.",
)
@click.option("--max-events", type=int, help="Replay only the first N events (a quick run).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.pass_obj
def replay(
    app: AppContext,
    kind: str,
    data_dir: Path,
    out: Path,
    variants: str,
    seed: int,
    label_threshold: float,
    levels: int,
    codes: int,
    negatives: int,
    room_window: float | None,
    max_events: int | None,
    quiet: bool,
) -> None:
    """Replay a log in time order for each variant (score each chunk, then learn from it)
    and write a report: metrics with bootstrap intervals, and each variant's paired
    difference from id_only."""
    # imported here: torch and matplotlib would slow every other command's start
    from api.evaluation import ADAPTERS, EvaluationError, ReplayConfig, run_protocol, write_report

    try:
        config = ReplayConfig(
            variants=tuple(v.strip() for v in variants.split(",") if v.strip()),
            seed=seed,
            levels=levels,
            codes=codes,
            negatives_per_event=negatives,
            room_window_s=room_window,
        )
        data = ADAPTERS[kind](label_threshold).load(data_dir)
        if max_events is not None:
            data = data.head(max_events)
        settings = app.settings
        report = run_protocol(
            data, config, settings.ranker, settings.encoder, out, progress=not quiet
        )
    except EvaluationError as exc:
        raise click.ClickException(str(exc)) from exc
    report["config"]["label_threshold"] = label_threshold
    report["config"]["max_events"] = max_events
    for path in write_report(report, out):
        click.echo(path)
