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

from jobs.log_setup import configure_logging

COMMANDS: dict[str, tuple[str, str]] = {
    "ingest": ("jobs.ingest", "Ingest CT scans: HU volumes at isotropic spacing into the store, facts into the catalog."),
    "demo-data": ("jobs.demo_data", "Write a cohort with planted outliers as DICOM series: synthetic CCTA or, with --base, real anatomy."),
    "train": ("jobs.train", "Train the 3D autoencoder on the ingested scans (split, normalise, pad, fit, checkpoint)."),
    "score": ("jobs.score", "Reconstruct every scan, store MSE / MSE_m / latents / error volumes, set T and flag."),
    "embed": ("jobs.embed", "UMAP the run's latent vectors to 2D and cluster them with DBSCAN."),
    "evaluate": ("jobs.evaluate", "AUROC / AP / precision, recall and false alarms at T / size bias, beside two baselines."),
    "export": ("jobs.export", "Export a snapshot of a run's scans that pass the filters (logged, with a manifest)."),
    "dashboard": ("jobs.dashboard", "Start the triage dashboard on the catalog; Ctrl+C stops it."),
    "demo": ("jobs.demo", "Build the demo cohort, run every job on it and open the dashboard (`--check`: verify only)."),
    "users": ("jobs.users", "Accounts that may sign in to the dashboard (kept in users.json beside the catalog, or $CTAE_USERS)."),
}
"""Command name -> (job module, the first line of the command's docstring, shown by --help)."""


def load_command(name: str) -> click.Command:
    """The real click command of ``name``: imports its job module and lets it register."""
    from jobs.threads import prefer_passive_openmp  # statistics & co. stay out of --help

    module, _ = COMMANDS[name]
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


@app.callback()
def main(verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging.")) -> None:
    """CT outlier triage."""
    configure_logging(verbose)
