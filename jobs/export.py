"""`ctae export`: write a filtered list of a run's scans (CSV / TXT / Parquet) and log it.

Uses the same ``ExportFilter`` and ``apply_filter`` as the dashboard's Export page, so the
command line and the page give the same rows for the same filter.
"""

from __future__ import annotations

import getpass
import logging
from pathlib import Path
from typing import Annotated

import typer

from data_catalog import CatalogBusyError, CatalogMissingError, connect
from data_catalog.filters import FORMATS, ExportFilter, apply_filter, render_export
from data_catalog.review import log_export
from data_catalog.settings import CatalogSettings
from data_catalog.views import run_info, scan_table
from jobs.options import CatalogOption, settings_from

logger = logging.getLogger(__name__)


def _multi(text: str) -> typer.models.OptionInfo:
    return typer.Option(show_default=False, help=f"{text}; repeat the option for several")


def export_list(
    settings: CatalogSettings,
    run_id: str,
    out: Path,
    filt: ExportFilter,
    fmt: str,
    who: str,
    source_paths: Path | None = None,
) -> int:
    """Write the run's scans that pass ``filt`` to ``out`` and log the export; returns rows.

    ``source_paths``: the owner-only mapping file of a ``--redact-paths`` ingest, whose paths
    replace the pseudonyms in the export.

    Raises:
        ValueError: unknown run, or unknown format.
        PermissionError: ``source_paths`` belongs to another user.
    """
    if fmt not in FORMATS:
        raise ValueError(f"--format {fmt!r} must be one of {list(FORMATS)}")
    with connect(settings.catalog_path, read_only=True) as con:
        if run_info(con, run_id) is None:
            raise ValueError(
                f"run {run_id!r} is not in {settings.catalog_path}; list runs in the dashboard "
                "or train one with `ctae train --run NAME`"
            )
        rows = apply_filter(scan_table(con, run_id), filt)
    if source_paths is not None:
        rows = _with_source_paths(rows, source_paths)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_bytes(render_export(rows, fmt))
    tmp.replace(out)
    with connect(settings.catalog_path) as con:
        log_export(
            con,
            who=who,
            run_id=run_id,
            filter_json=filt.to_json(),
            row_count=len(rows),
            fmt=fmt,
            destination=str(out.resolve()),
        )
    logger.info("export run=%s rows=%d format=%s out=%s", run_id, len(rows), fmt, out)
    return len(rows)


def _with_source_paths(rows, source_paths: Path):
    """``rows`` with the source root and path of each scan found in the mapping file."""
    from ctae_core.io.path_map import read_path_map

    links = read_path_map(source_paths)
    if not links:
        raise ValueError(
            f"--source-paths {source_paths}: no mapping there; is it the file "
            "beside the store of a --redact-paths ingest?"
        )
    rows = rows.copy()
    found = rows["scan_id"].map(links)
    known = found.notna()
    rows.loc[known, "source_root"] = [link.source_root for link in found[known]]
    rows.loc[known, "source_path"] = [link.source_path for link in found[known]]
    return rows


def _format_from(out: Path, fmt: str | None) -> str:
    if fmt:
        return fmt
    suffix = out.suffix.lstrip(".").lower()
    return suffix if suffix in FORMATS else "csv"


def export(
    run: Annotated[str, typer.Option("--run", help="The run whose scores and flags to use.")],
    out: Annotated[Path, typer.Option("--out", help="File to write.")],
    catalog: CatalogOption = None,
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format", help="csv | txt | parquet (default: from --out's suffix, else csv)"
        ),
    ] = None,
    split: Annotated[list[str] | None, _multi("train | val | test | unseen")] = None,
    flag: Annotated[str | None, typer.Option(help="outlier | inlier (by threshold T)")] = None,
    label: Annotated[
        list[str] | None, _multi("current verdict: inlier | outlier | unsure | unlabeled")
    ] = None,
    cause: Annotated[list[str] | None, _multi("cause tag, e.g. 'metal implant'")] = None,
    cluster: Annotated[list[int] | None, _multi("DBSCAN cluster (-1 = noise)")] = None,
    score_min: Annotated[float | None, typer.Option("--score-min")] = None,
    score_max: Annotated[float | None, typer.Option("--score-max")] = None,
    pixel_count_min: Annotated[int | None, typer.Option("--pixel-count-min")] = None,
    pixel_count_max: Annotated[int | None, typer.Option("--pixel-count-max")] = None,
    exclude_outliers: Annotated[
        bool,
        typer.Option(
            "--exclude-outliers",
            help="Drop labelled outliers and flagged scans not labelled inlier",
        ),
    ] = False,
    who: Annotated[
        str | None, typer.Option(help="Name logged with the export (default: $USER).")
    ] = None,
    source_paths: Annotated[
        Path | None,
        typer.Option(
            "--source-paths",
            help="Owner-only mapping file of a --redact-paths ingest (<store>.source-paths.csv): "
            "export the real source paths instead of the pseudonyms.",
        ),
    ] = None,
) -> None:
    """Export source series UIDs and paths of a run's scans that pass the filters."""
    settings = settings_from(catalog)
    try:
        filt = ExportFilter(
            split=tuple(split or ()),
            flag=flag,
            label=tuple(label or ()),
            cause=tuple(cause or ()),
            cluster=tuple(cluster or ()),
            score_min=score_min,
            score_max=score_max,
            pixel_count_min=pixel_count_min,
            pixel_count_max=pixel_count_max,
            exclude_outliers=exclude_outliers,
        )
        rows = export_list(
            settings,
            run,
            out,
            filt,
            _format_from(out, fmt),
            who or getpass.getuser(),
            source_paths,
        )
    except ValueError as err:
        raise typer.BadParameter(str(err)) from err
    except PermissionError as err:
        typer.echo(
            f"error: {source_paths} is readable by its owner only ({err.strerror}); "
            "ask the user who ran the ingest to export",
            err=True,
        )
        raise typer.Exit(1) from err
    except (CatalogMissingError, CatalogBusyError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1) from err
    typer.echo(f"exported {rows} scans of run {run} to {out}")


def register(app: typer.Typer) -> None:
    """Add `ctae export` to the CLI."""
    app.command("export")(export)
