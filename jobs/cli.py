"""The `ctae` command line. Each job module adds its command(s) through ``register(app)``."""

from __future__ import annotations

import importlib

import typer

from jobs.runtime import configure_logging

app = typer.Typer(
    name="ctae",
    help="CT outlier triage: ingest scans, train a 3D autoencoder, score, embed, review, export.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

COMMAND_MODULES = [
    "jobs.ingest",
    "jobs.demo_data",
    "jobs.train",
    "jobs.score",
    "jobs.embed",
    "jobs.evaluate",
    "jobs.export",
    "jobs.dashboard",
    "jobs.demo",
]
COMMAND_MODULES.append("jobs.users")  # issue 17: `ctae users add|remove|list`


@app.callback()
def main(verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging.")) -> None:
    """CT outlier triage."""
    configure_logging(verbose)


for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(app)
