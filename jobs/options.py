"""Options shared by every `ctae` command, so that jobs and the dashboard meet in one catalog."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from data_catalog.settings import CatalogSettings

CatalogOption = Annotated[
    Path | None,
    typer.Option(
        "--catalog",
        help="DuckDB catalog file. Default: $CTAE_CATALOG, else ./ctae-data/catalog.duckdb.",
        show_default=False,
    ),
]
StoreOption = Annotated[
    Path | None,
    typer.Option(
        "--store",
        help="Folder of stored volumes and run outputs. Default: $CTAE_STORE, else "
        "'store' beside the catalog.",
        show_default=False,
    ),
]
NoProgressOption = Annotated[
    bool, typer.Option("--no-progress", help="Hide progress bars (batch / HPC logs).")
]


def settings_from(catalog: Path | None, store: Path | None = None) -> CatalogSettings:
    """Resolve the catalog and store from options, then the environment, then defaults."""
    return CatalogSettings.resolve(catalog, store)
