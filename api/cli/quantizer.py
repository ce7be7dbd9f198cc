"""``lucidrec quantizer``: offline retraining, encoding and reporting of codebooks."""

from __future__ import annotations

import json
from pathlib import Path

import click
import msgspec
from rich.console import Console

from api.cli.context import AppContext
from configs import replace_validated
from quantizer import Codebook, EmbeddingSource, encode_file, quality_report, report_table
from quantizer import retrain as retrain_codebook
from workers.codebooks import check_readable, retrain_from_catalog

EMBEDDINGS = click.option(
    "--embeddings",
    required=True,
    type=click.Path(path_type=Path),
    help="An .npy file of (n, dim) float vectors, or a folder of .npy shards.",
)
CODEBOOK = click.option(
    "--codebook", required=True, type=click.Path(path_type=Path), help="Codebook folder."
)


@click.group()
def quantizer() -> None:
    """Fit, apply and inspect RQ-KMeans codebooks (LUCID codes)."""


@quantizer.command()
@click.option(
    "--embeddings",
    type=click.Path(path_type=Path),
    help="An .npy file of (n, dim) float vectors, or a folder of .npy shards.",
)
@click.option(
    "--from-catalog",
    is_flag=True,
    help="Fit on every embedding in the catalog, re-code it, activate the new version.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    help="New codebook folder to write (with --embeddings; must not exist).",
)
@click.option(
    "--parent",
    help="Codebook folder to warm-start from and align to ('active' with --from-catalog).",
)
@click.option("--levels", type=int, help="Levels L (default: the parent's, else settings).")
@click.option(
    "--codes", type=int, help="Centroids per level N (default: the parent's, else settings)."
)
@click.option("--seed", type=int, help="Random seed (default: settings).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.pass_obj
def retrain(
    app: AppContext,
    embeddings: Path | None,
    from_catalog: bool,
    out: Path | None,
    parent: str | None,
    levels: int | None,
    codes: int | None,
    seed: int | None,
    quiet: bool,
) -> None:
    """Fit a new versioned codebook and print its quality report.

    Offline: --embeddings PATH --out DIR. Serving: --from-catalog re-codes every
    slice and room under the new version and switches to it atomically.
    """
    if from_catalog == (embeddings is not None):
        raise click.UsageError("give exactly one of --embeddings PATH or --from-catalog")
    if from_catalog and out is not None:
        raise click.UsageError("--from-catalog writes under the model store; drop --out")
    if embeddings is not None and out is None:
        raise click.UsageError("--embeddings needs --out DIR for the new codebook")
    if parent == "active" and not from_catalog:
        raise click.UsageError("--parent active needs --from-catalog")
    parent_book = Codebook.load(parent) if parent and parent != "active" else None
    if parent_book is not None:
        levels, codes = levels or parent_book.levels, codes or parent_book.codes
    quantizer_settings = replace_validated(
        app.settings.quantizer, levels=levels, codes=codes, seed=seed
    )
    if from_catalog:
        check_readable(quantizer_settings.levels, quantizer_settings.codes, app.settings)
        settings = msgspec.structs.replace(app.settings, quantizer=quantizer_settings)
        book = retrain_from_catalog(settings, parent, progress=not quiet)
        where = "the catalog, active now"
    else:
        book = retrain_codebook(
            embeddings, out, quantizer_settings, parent_book, progress=not quiet
        )
        where = str(out)
    Console().print(report_table(book.report or {}))
    click.echo(f"wrote codebook {book.version} to {where}")


@quantizer.command()
@CODEBOOK
@EMBEDDINGS
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Output .npy of int32 codes (n, L); must not exist.",
)
@click.option("--beam-width", type=int, help="Beam width (default: settings).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.pass_obj
def encode(
    app: AppContext,
    codebook: Path,
    embeddings: Path,
    out: Path,
    beam_width: int | None,
    quiet: bool,
) -> None:
    """Encode the embeddings into LUCID codes, streaming into an .npy file."""
    settings = replace_validated(app.settings.quantizer, beam_width=beam_width)
    n = encode_file(
        Codebook.load(codebook),
        embeddings,
        out,
        batch_size=settings.batch_size,
        beam_width=settings.beam_width,
        progress=not quiet,
    )
    click.echo(f"wrote {n:,} codes to {out}")


@quantizer.command()
@CODEBOOK
@EMBEDDINGS
@click.option(
    "--parent", type=click.Path(path_type=Path), help="Codebook to measure churn against."
)
@click.option(
    "--json",
    "json_out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the report as JSON here.",
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.pass_obj
def report(
    app: AppContext,
    codebook: Path,
    embeddings: Path,
    parent: Path | None,
    json_out: Path | None,
    quiet: bool,
) -> None:
    """Print the quality report of a codebook on the embeddings (churn with --parent)."""
    settings = app.settings.quantizer
    result = quality_report(
        Codebook.load(codebook),
        EmbeddingSource.open(embeddings),
        Codebook.load(parent) if parent else None,
        batch_size=settings.batch_size,
        beam_width=settings.beam_width,
        progress=not quiet,
    )
    Console().print(report_table(result))
    if json_out:
        json_out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        click.echo(f"wrote {json_out}")
