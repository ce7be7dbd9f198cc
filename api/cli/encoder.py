"""``lucidrec encode`` and ``lucidrec encoder``: batch encoding, training, MovieLens pairs."""

from __future__ import annotations

from pathlib import Path

import click
import msgspec

from api.cli.context import AppContext
from configs import EncoderSettings, replace_validated
from encoder.errors import EncoderError

# torch and transformers load inside the commands, so that --help and the other
# command groups stay fast.

QUIET = click.option("--quiet", is_flag=True, help="No progress bar.")


def _settings(app: AppContext, checkpoint: Path | None) -> EncoderSettings:
    settings = app.settings.encoder
    if checkpoint is not None:
        settings = msgspec.structs.replace(settings, checkpoint=str(checkpoint))
    return settings


@click.command()
@click.option(
    "--input",
    "input_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Slices as JSONL, one object per line (see docs/architecture.md: the slice format).",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Output .npy of float32 (n, out_dim) unit vectors; must not exist.",
)
@click.option(
    "--encoder",
    "checkpoint",
    type=click.Path(file_okay=False, path_type=Path),
    help="A trained encoder folder (default: encoder.checkpoint, else the configured towers).",
)
@click.option("--batch-size", type=int, help="Slices per forward pass (default: settings).")
@QUIET
@click.pass_obj
def encode(
    app: AppContext,
    input_path: Path,
    out: Path,
    checkpoint: Path | None,
    batch_size: int | None,
    quiet: bool,
) -> None:
    """Encode the slices of a JSONL file into an .npy of embeddings (rows in file order)."""
    if out.exists():
        raise EncoderError(f"{out} already exists; choose a new output file")
    import numpy as np

    from encoder.slices import read_slices

    settings = replace_validated(_settings(app, checkpoint), batch_size=batch_size)
    slices = read_slices(input_path)
    from encoder import SliceEncoder

    enc = SliceEncoder.from_settings(settings)
    embeddings = enc.encode(slices, progress=not quiet)
    np.save(out, embeddings)
    stats = enc.frame_stats.as_dict()
    note = f", dropped frames: {stats['dropped']}" if stats["dropped"] else ""
    if stats["ignored"]:
        note += (
            f", {stats['ignored']} frames ignored: the encoder has no vision tower "
            "(set encoder.vision.path to encode them)"
        )
    click.echo(f"wrote {embeddings.shape[0]:,} x {embeddings.shape[1]} embeddings to {out}{note}")


@click.group()
def encoder() -> None:
    """Train the slice encoder and build training pairs."""


@encoder.command()
@click.option(
    "--pairs",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Training pairs as JSONL (query, slice, optional group; see docs/architecture.md).",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Output folder: checkpoint, loss log, report, one encoder folder per stage.",
)
@click.option(
    "--eval-pairs",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Held-out pairs (default: hold out train.eval_fraction of the groups).",
)
@click.option(
    "--stages",
    help="Comma-separated stages to run, e.g. align or align,joint (default: settings).",
)
@click.option("--batch-size", type=int, help="Pairs per step (default: settings).")
@click.option(
    "--init",
    "checkpoint",
    type=click.Path(file_okay=False, path_type=Path),
    help="Start from this trained encoder folder instead of fresh heads.",
)
@click.option("--resume", is_flag=True, help="Continue from OUT/checkpoint.pt.")
@QUIET
@click.pass_obj
def train(
    app: AppContext,
    pairs: Path,
    out: Path,
    eval_pairs: Path | None,
    stages: str | None,
    batch_size: int | None,
    checkpoint: Path | None,
    resume: bool,
    quiet: bool,
) -> None:
    """Two-stage Q2I contrastive training; prints held-out recall@k after each stage."""
    from encoder.training import train_encoder

    settings = _settings(app, checkpoint)
    train_settings = replace_validated(
        settings.train,
        stages=[s.strip() for s in stages.split(",")] if stages else None,
        batch_size=batch_size,
    )
    settings = msgspec.structs.replace(settings, train=train_settings)
    report = train_encoder(
        settings, pairs, out, eval_pairs=eval_pairs, resume=resume, progress=not quiet
    )
    for stage, metrics in report.items():
        shown = ", ".join(f"{k} {v:.3f}" for k, v in metrics.items() if k.startswith("recall"))
        click.echo(f"{stage}: {shown}")
    click.echo(f"wrote {out}/ (encoder-<stage>/, report.json, loss.jsonl)")


@encoder.command("movielens-pairs")
@click.option(
    "--data-dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The movielens100k_tmdb folder (read in place).",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Pairs JSONL to write; must not exist.",
)
@click.option(
    "--kind",
    type=click.Choice(["genre-decade", "co-like"]),
    default="genre-decade",
    show_default=True,
    help="genre-decade: a genre-and-decade query -> a fitting movie; "
    "co-like: a liked movie -> the next one the same user liked (grouped by user).",
)
@click.option("--movies", type=int, help="genre-decade: draw this many movies (default: all).")
@click.option("--users", type=int, help="co-like: draw this many users (default: all).")
@click.option("--per-user", type=int, default=2, show_default=True, help="co-like: pairs per user.")
@click.option("--seed", type=int, default=0, show_default=True)
def movielens_pairs(
    data_dir: Path,
    out: Path,
    kind: str,
    movies: int | None,
    users: int | None,
    per_user: int,
    seed: int,
) -> None:
    """Build Q2I training pairs from MovieLens 100K + TMDB (posters as frames)."""
    from encoder.datasets.movielens import co_like_pairs, genre_decade_pairs
    from encoder.training import write_pairs

    if out.exists():
        raise EncoderError(f"{out} already exists; choose a new output file")
    if kind == "co-like":
        pairs = co_like_pairs(data_dir, users=users, per_user=per_user, seed=seed)
    else:
        pairs = genre_decade_pairs(data_dir, movies=movies, seed=seed)
    write_pairs(pairs, out)
    queries = len({p.query for p in pairs})
    click.echo(f"wrote {len(pairs):,} pairs ({queries:,} distinct queries) to {out}")
