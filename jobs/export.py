"""`ctae export`: write a snapshot of a run's filtered scans and log it; re-create a snapshot
byte for byte; show what changed between two snapshots and why.

Uses the same ``ExportFilter`` as the dashboard's Export page, so the command line and the
page give the same rows for the same filter.
"""

from __future__ import annotations

import dataclasses
import getpass
import logging
import os
import shutil
from pathlib import Path
from typing import Annotated

import typer

from ctae_core.io.path_map import path_map_file
from ctae_core.io.volume_store import StoreWriteError, write_atomic
from data_catalog import connect
from data_catalog.export_formats import (
    BUNDLE_FORMATS,
    FILE_SUFFIX,
    FORMATS,
    BundleVolumeMissingError,
    bundle_files,
    render_list,
)
from data_catalog.filters import ExportFilter
from data_catalog.owned_files import owned_by_catalog
from data_catalog.removal import removed_ids
from data_catalog.settings import CatalogSettings
from data_catalog.snapshot_diff import diff_snapshots
from data_catalog.snapshots import (
    Snapshot,
    list_hash,
    load_snapshot,
    record_snapshot,
    run_paths,
    snapshot_log,
    take_snapshot,
)
from data_catalog.store_paths import store_folders
from jobs.job_errors import INTERRUPTED, JobError, stop
from jobs.options import CatalogOption, settings_from

logger = logging.getLogger(__name__)


def _multi(text: str) -> typer.models.OptionInfo:
    return typer.Option(show_default=False, help=f"{text}; repeat the option for several")


def manifest_path(out: Path) -> Path:
    """Where a one-file export's manifest goes: ``<out>.manifest.json`` beside it."""
    return out.with_name(f"{out.name}.manifest.json")


class OutWriteError(JobError):
    """``--out`` could not be written (a file where a folder goes, no room, no permission);
    what was written of it is removed."""


class StoreMissingError(JobError):
    """A stored volume or anomaly map a bundle needs is gone from the store."""


def _out_failed(out: Path, err: OSError) -> OutWriteError:
    return OutWriteError(f"--out {out}: could not be written ({err.strerror or err}); give a "
                         "path in a folder you may write, on a disk with room")


def _write_atomic(path: Path, payload: bytes, out: Path | None = None) -> None:
    """Write ``path`` through a part file beside it (``write_atomic``); a failure
    (``OutWriteError``, about ``out``, default ``path``) leaves neither."""
    try:
        write_atomic(path, lambda handle: handle.write(payload))
    except StoreWriteError as err:  # its message speaks of the store: say it of --out
        raise _out_failed(out or path, err.__cause__ or err) from err


def check_out(settings: CatalogSettings, out: Path) -> None:
    """Refuse an ``--out`` (or its manifest beside it) that would replace one of the catalog's
    own files or land in its store (``data_catalog.owned_files``).

    Raises:
        ValueError: the path and what it is, and what to give instead.
    """
    with connect(settings.catalog_path, read_only=True) as con:
        stores = store_folders(con)
    maps = {path_map_file(store).resolve() for store in (settings.store_dir, *stores)}
    beside = {**{m: "the path map of `--redact-paths` (the only link from the ids to the files)"
                 for m in maps},
              **{m.with_name(m.name + ".lock"): "the lock of a path map" for m in maps}}
    for target in (out, manifest_path(out)):
        what = owned_by_catalog(settings, target, stores) or beside.get(target.expanduser().resolve())
        if what:
            raise ValueError(f"--out {out}: {target} is {what}; an export never writes over the "
                             "catalog's own files or into its store: give a file of its own, "
                             "e.g. clean.csv beside the catalog")


def write_snapshot(snapshot: Snapshot, out: Path, error_paths: dict[str, str]) -> None:
    """Write the snapshot's files: one file + manifest, or a bundle folder (built aside, then
    renamed into place, so a failure never leaves half a bundle).

    Raises:
        ValueError: a bundle's folder already exists and is not empty.
    """
    fmt = snapshot.manifest["format"]
    if fmt not in BUNDLE_FORMATS:
        if out.is_dir():
            raise ValueError(f"--out {out} is a folder; a {fmt} export is one file: give its "
                             f"name, e.g. {out / ('clean.' + FILE_SUFFIX[fmt])}")
        _write_atomic(out, render_list(snapshot, fmt))
        _write_atomic(manifest_path(out), snapshot.manifest_bytes(), out)
        return
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        what = "already holds files" if out.is_dir() else "is a file"
        raise ValueError(f"--out {out} {what}; give a new folder for a {fmt} bundle")
    from ctae_core.io.nifti import store_nifti

    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        try:
            for relative, payload in bundle_files(snapshot, fmt, error_paths, store_nifti):
                _write_atomic(tmp / relative, payload, out)
        except BundleVolumeMissingError as err:
            raise StoreMissingError(f"{err}; nothing was written") from err
        try:
            if out.exists():
                out.rmdir()
            tmp.replace(out)
        except OSError as err:
            raise _out_failed(out, err) from err
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _error_paths(con, run_id: str) -> dict[str, str]:
    paths = run_paths(con, run_id).dropna(subset=["error_path"])
    return dict(zip(paths["scan_id"], paths["error_path"], strict=True))


def export_snapshot(
    settings: CatalogSettings,
    run_id: str,
    out: Path,
    filt: ExportFilter,
    fmt: str,
    who: str,
    source_paths: Path | None = None,
) -> Snapshot:
    """Snapshot the run's scans that pass ``filt``, write them to ``out`` and log it.

    ``source_paths``: the owner-only mapping file of a ``--redact-paths`` ingest, whose real
    paths replace the pseudonyms in the written file (the catalog's snapshot keeps the
    pseudonyms).

    Raises:
        ValueError: unknown run or format, or a bundle folder that is not empty.
        PermissionError: ``source_paths`` belongs to another user.
    """
    if fmt not in FORMATS:
        raise ValueError(f"--format {fmt!r} must be one of {list(FORMATS)}")
    with connect(settings.catalog_path, read_only=True) as con:
        snapshot = take_snapshot(con, run_id, filt, fmt, who)
        errors = _error_paths(con, run_id) if fmt == "nifti" else {}
    written = snapshot if source_paths is None else _with_source_paths(snapshot, source_paths)
    write_snapshot(written, out, errors)
    with connect(settings.catalog_path) as con:
        record_snapshot(con, snapshot, str(out.resolve()))
    logger.info("export %s run=%s rows=%d format=%s out=%s", snapshot.export_id, run_id,
                snapshot.manifest["row_count"], fmt, out)
    return snapshot


def recreate_snapshot(settings: CatalogSettings, export_id: str, out: Path) -> Snapshot:
    """Write a logged snapshot again from the catalog, byte for byte.

    Raises:
        ValueError: unknown export id, or the catalog no longer gives the same list (its
            scans were re-ingested or removed): the message says which hash it got.
    """
    with connect(settings.catalog_path, read_only=True) as con:
        snapshot = load_snapshot(con, export_id)
        errors = _error_paths(con, snapshot.manifest["run_id"])
        removed = set(removed_ids(con)) & set(snapshot.listed["scan_id"])
    if removed and snapshot.manifest["format"] in BUNDLE_FORMATS:
        raise JobError(
            f"export {snapshot.export_id} lists {len(removed)} scan(s) removed from the catalog "
            f"since (`ctae remove`; e.g. {min(removed)}): their stored volumes are gone, so its "
            f"{snapshot.manifest['format']} bundle cannot be written again; `ctae export --run "
            f"{snapshot.manifest['run_id']} --format {snapshot.manifest['format']}` with its "
            "filters writes one of the scans the catalog holds now")
    got = list_hash(snapshot.listed)
    if got != snapshot.manifest["content_hash"]:
        raise ValueError(
            f"export {snapshot.export_id}: the catalog now gives a list with sha256 {got}, not "
            f"the snapshot's {snapshot.manifest['content_hash']}; scans were re-ingested or removed"
        )
    write_snapshot(snapshot, out, errors)
    return snapshot


def _with_source_paths(snapshot: Snapshot, source_paths: Path) -> Snapshot:
    """``snapshot`` with the source root and path of each scan found in the mapping file."""
    from ctae_core.io.path_map import read_path_map

    try:
        links = read_path_map(source_paths)
    except PermissionError as err:
        raise JobError(f"{source_paths} is readable by its owner only ({err.strerror}); ask the "
                       "user who ran the ingest to export") from err
    if not links:
        raise ValueError(
            f"--source-paths {source_paths}: no mapping there; is it the file "
            "beside the store of a --redact-paths ingest?"
        )
    rows = snapshot.rows.copy()
    found = rows["scan_id"].map(links)
    known = found.notna()
    rows.loc[known, "source_root"] = [link.source_root for link in found[known]]
    rows.loc[known, "source_path"] = [link.source_path for link in found[known]]
    return dataclasses.replace(snapshot, rows=rows)


def _format_from(out: Path, fmt: str | None) -> str:
    if fmt:
        return fmt
    suffix = out.suffix.lstrip(".").lower()
    return suffix if suffix in FILE_SUFFIX else "csv"


def _show_diff(settings: CatalogSettings, a: str, b: str, out: Path | None) -> None:
    with connect(settings.catalog_path, read_only=True) as con:
        summary, table = diff_snapshots(load_snapshot(con, a), load_snapshot(con, b))
    typer.echo(
        f"{summary['a']} → {summary['b']}: rows {summary['rows'][0]} → {summary['rows'][1]}, "
        f"labels {summary['labels'][0]} → {summary['labels'][1]}; "
        f"{summary['added']} added, {summary['removed']} removed, {summary['changed']} changed"
        + (f"; manifest differs in {', '.join(summary['differs'])}" if summary["differs"] else "")
    )
    if len(table):
        typer.echo(table[["scan_id", "change", "reasons"]].to_string(index=False))
    if out is not None:
        _write_atomic(out, table.to_csv(index=False).encode())


def export(
    run: Annotated[str | None, typer.Option("--run", help="The run whose scores and flags to use.")] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="File to write (a folder for nifti / nnunet).")
    ] = None,
    catalog: CatalogOption = None,
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format", help="csv | txt | parquet | monai (one file); nifti | nnunet (a folder). "
            "Default: from --out's suffix, else csv"
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
    drop_copies: Annotated[
        bool,
        typer.Option(
            "--drop-copies",
            help="Of scans with the same stored voxels (one series stored twice), keep the "
            "first by source path",
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
    diff: Annotated[
        tuple[str, str] | None,
        typer.Option("--diff", help="Show what changed between snapshots A and B, and why "
                     "(export ids or unique prefixes; --out writes the table as CSV)."),
    ] = None,
    recreate: Annotated[
        str | None, typer.Option("--recreate", help="Write snapshot ID again to --out, byte for byte.")
    ] = None,
    list_snapshots: Annotated[bool, typer.Option("--list", help="List the snapshots.")] = False,
) -> None:
    """Export a snapshot of a run's scans that pass the filters (logged, with a manifest)."""
    settings = settings_from(catalog, follow_store=True, existing=True)
    try:
        if list_snapshots:
            with connect(settings.catalog_path, read_only=True) as con:
                typer.echo(snapshot_log(con).to_string(index=False))
            return
        if out is not None:
            check_out(settings, out)
        if diff:
            _show_diff(settings, diff[0], diff[1], out)
            return
        if out is None:
            raise ValueError("--out is required: the file (or bundle folder) to write")
        if recreate:
            snapshot = recreate_snapshot(settings, recreate, out)
            typer.echo(f"re-created export {snapshot.export_id} "
                       f"({snapshot.manifest['row_count']} scans) at {out}")
            return
        if run is None:
            raise ValueError("--run is required: the run whose scans to export")
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
            drop_copies=drop_copies,
        )
        snapshot = export_snapshot(
            settings, run, out, filt, _format_from(out, fmt), who or getpass.getuser(),
            source_paths,
        )
    except ValueError as err:
        raise typer.BadParameter(str(err)) from err
    except JobError as err:  # OutWriteError; an owner-only path list
        raise stop("export", err) from err
    except KeyboardInterrupt:  # click's "Aborted!" and exit 1 until stop 56
        typer.echo("ctae export: interrupted (Ctrl+C); the export is not logged (a bundle or "
                   "file being written was removed): run it again", err=True)
        raise typer.Exit(INTERRUPTED) from None
    typer.echo(
        f"exported {snapshot.manifest['row_count']} scans of run {run} to {out} "
        f"(snapshot {snapshot.export_id}, list sha256 {snapshot.manifest['content_hash'][:12]})"
    )
    if snapshot.manifest["row_count"] == 0:  # written without a word until stop 56
        typer.secho(f"no scan of run {run} passes these filters: the list is empty; loosen them "
                    "to export scans", fg=typer.colors.YELLOW, err=True)


def register(app: typer.Typer) -> None:
    """Add `ctae export` to the CLI."""
    app.command("export")(export)
