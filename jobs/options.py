"""Options shared by every `ctae` command, so that jobs and the dashboard meet in one catalog."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from data_catalog.settings import CatalogSettings
from jobs.executor_types import EXECUTORS, ExecutorConfig

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


def refuse_file_in_the_way(target: Path, option: str, *, folder: bool = True) -> None:
    """Refuse a ``folder`` to write that is a file, or a path to write (a folder or, with
    ``folder=False``, a file) that lies below a file (``a/b`` where ``a`` is a file): making it
    would end in a traceback after the checks."""
    for path in (target, *target.parents) if folder else target.parents:
        if path.exists():
            if not path.is_dir():
                where = "is a file" if path == target else f"lies below a file, {path}"
                raise typer.BadParameter(f"{target} {where}; give a path in a folder (one that "
                                         "does not exist yet is made)", param_hint=option)
            return


def settings_from(catalog: Path | None, store: Path | None = None, *,
                  follow_store: bool = False, existing: bool = False) -> CatalogSettings:
    """Resolve the catalog and store from options, then the environment, then defaults; a
    catalog path that is a folder, or a store path that is a file, is refused before any work.

    ``follow_store``: the job reads what the store holds, so a catalog moved with its store
    first follows it (``jobs.store_moves``; one catalog open: ingest, which only adds to the
    store, spares its start-up that). ``existing``: the job reads the catalog, so a path with
    no catalog is refused (``CatalogMissingError``) instead of being made an empty one.
    """
    settings = CatalogSettings.resolve(catalog, store)
    if settings.catalog_path.is_dir():
        raise typer.BadParameter(
            f"{settings.catalog_path} is a folder; pass the catalog file in it (e.g. "
            f"{settings.catalog_path / 'catalog.duckdb'}), or a new file's path to start one",
            param_hint="--catalog")
    if settings.store_dir.exists() and not settings.store_dir.is_dir():
        raise typer.BadParameter(
            f"{settings.store_dir} is a file; pass a folder for the stored volumes and run "
            "outputs (default: 'store' beside the catalog)", param_hint="--store")
    refuse_file_in_the_way(settings.catalog_path, "--catalog", folder=False)
    refuse_file_in_the_way(settings.store_dir, "--store", folder=False)  # itself: just above
    if existing and not settings.catalog_path.exists():
        from data_catalog import CatalogMissingError  # DuckDB: not at CLI start-up

        raise CatalogMissingError(f"{settings.catalog_path}: no catalog here yet; run `ctae ingest "
                                  f"SOURCE --catalog {settings.catalog_path}` first, or check the path")
    if follow_store:
        from jobs.store_moves import follow_moved_store

        follow_moved_store(settings)
    return settings


ExecutorOption = Annotated[
    str,
    typer.Option(
        "--executor",
        help="Where per-scan work runs: local (process pool on this machine) | ray (a Ray "
        "cluster; pip install 'ctae[ray]'). Only this process writes the catalog.",
    ),
]
RayAddressOption = Annotated[
    str | None,
    typer.Option(
        "--ray-address",
        help="Ray cluster to join with --executor ray: 'auto' (this node's cluster) or "
        "ray://HOST:10001. Default: start a local Ray instance for the job.",
        show_default=False,
    ),
]


def executor_from(
    executor: str, ray_address: str | None = None, workers: int | None = None
) -> ExecutorConfig:
    """The ``ExecutorConfig`` of the CLI options; bad combinations become a usage error."""
    if executor not in EXECUTORS:
        raise typer.BadParameter(f"--executor must be one of {', '.join(EXECUTORS)}, not {executor!r}")
    try:
        return ExecutorConfig(kind=executor, workers=workers, ray_address=ray_address)  # type: ignore[arg-type]
    except ValueError as err:
        raise typer.BadParameter(str(err)) from err
