"""The ``lucidrec`` command line: a thin layer that parses arguments and delegates.

Errors the libraries raise for bad input (:class:`SettingsError`,
:class:`QuantizerError`) become one-line messages and exit status 1, never tracebacks.
"""

from __future__ import annotations

import click

from api.cli.config import config
from api.cli.context import AppContext
from api.cli.encoder import encode, encoder
from api.cli.evaluation import evaluation
from api.cli.quantizer import quantizer
from api.cli.serve import serve
from api.cli.workers import worker
from configs import SettingsError
from encoder.errors import EncoderError
from quantizer import QuantizerError
from workers.runner import WorkerConfigError

USER_ERRORS = (SettingsError, QuantizerError, EncoderError, WorkerConfigError)


class LucidrecGroup(click.Group):
    """Turns the libraries' input errors into clean CLI messages."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except USER_ERRORS as exc:
            raise click.ClickException(str(exc)) from exc


@click.group(cls=LucidrecGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_name",
    envvar="LUCIDREC_CONFIG",
    metavar="PROFILE|FILE",
    help="Settings profile (default, production, test) or a YAML file. Env: LUCIDREC_CONFIG.",
)
@click.version_option(package_name="lucidrec")
@click.pass_context
def cli(ctx: click.Context, config_name: str | None) -> None:
    """lucidrec: ID-free semantic-code ranking for live rooms.

    Settings come from the profile, then LUCIDREC_SECTION__KEY environment variables.
    """
    ctx.obj = AppContext(config_name)


cli.add_command(config)
cli.add_command(quantizer)
cli.add_command(worker)
cli.add_command(serve)
cli.add_command(encode)
cli.add_command(encoder)
cli.add_command(evaluation)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="lucidrec")
