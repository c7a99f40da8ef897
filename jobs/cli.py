"""The `ctae` command line. Each job module adds its command through ``register(app)``.

A job module is imported only when its command runs (or its own ``--help`` is asked for):
``ctae --help`` lists the commands from ``COMMANDS`` without importing torch, pandas or DuckDB.
The ``ctae`` entry point is ``jobs.launch.main``, which runs some jobs without typer's parsing.
"""

from __future__ import annotations

import importlib
from typing import Any

import click
import typer
from typer.core import TyperGroup

from jobs.commands import COMMANDS, LAUNCHERS
from jobs.log_setup import configure_logging


def load_command(name: str) -> click.Command:
    """The real click command of ``name``: imports its job module and lets it register."""
    from jobs.threads import prefer_passive_openmp  # statistics & co. stay out of --help

    module, _ = COMMANDS[name]
    if name not in LAUNCHERS:
        prefer_passive_openmp()  # before the job module imports torch
    commands = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)
    importlib.import_module(module).register(commands)
    return typer.main.get_group(commands).commands[name]


class LazyCommands(TyperGroup):
    """A command group that lists summaries and imports a job module only to run it."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        for name, (_, summary) in COMMANDS.items():
            self.commands.setdefault(name, click.Command(name, help=summary, short_help=summary))

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name, command, rest = super().resolve_command(ctx, args)
        if name in COMMANDS:
            command = load_command(name)
        return name, command, rest


app = typer.Typer(
    cls=LazyCommands,
    name="ctae",
    help="CT outlier triage: ingest scans, train a 3D autoencoder, score, embed, review, export.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain click help: importing rich costs a third of the 0.3 s start-up
)


def _show_version(asked: bool) -> None:
    """``ctae --version``: the package's version and the catalog schema it writes (what a bug
    report and a shared catalog need to name)."""
    if not asked:
        return
    from importlib.metadata import PackageNotFoundError, version

    from data_catalog.schema import SCHEMA_VERSION  # DuckDB's import: only when asked

    try:
        package = version("ctae")
    except PackageNotFoundError:  # run from a checkout that was never installed
        package = "(not installed)"
    typer.echo(f"ctae {package} (catalog schema v{SCHEMA_VERSION})")
    raise typer.Exit()


@app.callback()
def main(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging."),
    show_version: bool = typer.Option(False, "--version", callback=_show_version, is_eager=True,
                                      help="Print ctae's version and catalog schema, and exit."),
) -> None:
    """CT outlier triage."""
    configure_logging(verbose)
