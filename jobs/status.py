"""`ctae status`: what a catalog holds and how far each run got, which jobs run on it now and
which ended last, and the command that comes next — for a terminal or a batch script (``--json``)
where no browser is at hand (a cluster's login node, a SLURM log).

It reads the catalog (opened as every reader opens it: migrated first where its schema is older)
and records nothing of its own: no job row, and a job recorded as running whose process on this
machine is gone is shown as such, not marked (the next job marks it).
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Annotated, Any

import typer

from ctae_core.io.processes import process_state
from data_catalog import connect
from data_catalog.job_runs import how_to_go_on, running_jobs
from data_catalog.scans import duplicate_counts
from data_catalog.schema import current_version
from data_catalog.settings import CatalogSettings
from data_catalog.status import catalog_summary, next_steps
from jobs.job_errors import JobError, stop
from jobs.options import CatalogOption, StoreOption, settings_from


def read_status(settings: CatalogSettings, jobs: int = 5, disk: bool = False) -> dict[str, Any]:
    """The catalog's summary (``data_catalog.status.catalog_summary``) with its schema version,
    its copies, the jobs recorded as running (each with what its process is now), the next
    commands (``next_steps``) and, with ``disk``, the store's use (``disk_use``)."""
    with connect(settings.catalog_path, read_only=True) as con:
        status = catalog_summary(con, jobs)
        status["schema"] = current_version(con)
        status["copies"], status["copy_groups"] = duplicate_counts(con)
        running = running_jobs(con)
    here = socket.gethostname()
    status["running"] = [
        {"job": r.job, "run_id": r.run_id, "started": r.started_at, "pid": r.process.pid,
         "host": r.process.host, "process": process_state(r.process, here)}
        for r in running
    ]
    status["catalog"], status["store"] = str(settings.catalog_path), str(settings.store_dir)
    status["next"] = next_steps(status)
    if disk:
        status["disk"] = disk_use(settings, [run["run_id"] for run in status["runs"]])
    return status


def folder_use(folder: Path) -> dict[str, int]:
    """How many files ``folder`` holds, and their bytes, all the way down (0 and 0 where it is
    not there)."""
    files = size = 0
    stack = [folder]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:  # not there, or not readable
            continue
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                stack.append(Path(entry.path))
            elif entry.is_file(follow_symlinks=False):
                files += 1
                size += entry.stat(follow_symlinks=False).st_size
    return {"files": files, "bytes": size}


def disk_use(settings: CatalogSettings, run_ids: list[str]) -> dict[str, Any]:
    """The store's stored volumes and each run's folder (its checkpoint, reconstructions and
    anomaly maps: what `ctae remove --run` frees), in files and bytes."""
    return {"volumes": folder_use(settings.volumes_dir),
            "runs": {r: folder_use(settings.run_dir(r)) for r in run_ids}}


def _number(value: Any) -> str:
    return "—" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


def _gb(use: dict[str, int]) -> str:
    return f"{use['bytes'] / 1e9:.2f} GB in {use['files']:,} files"


def _process_note(job: dict[str, Any]) -> str:
    """What ``status_lines`` adds to a running job's process state."""
    if job["process"] == "gone":
        return (": it stopped without recording its end, killed or its machine restarted; "
                + how_to_go_on(job["job"], job["run_id"]))
    if job["process"] == "not checked":
        return ": it runs on another machine; `ctae status` there tells"
    return ""


def status_lines(status: dict[str, Any]) -> list[str]:
    """``read_status`` for the terminal."""
    lines = [f"catalog {status['catalog']} (schema v{status['schema']}), store {status['store']}"]
    refused = ", ".join(f"{n} {reason}" for reason, n in status["errors_by_reason"].items())
    extra = [f"{status['ingest_errors']} inputs refused by ingest: {refused}" if refused else "",
             f"{status['removed']} removed" if status["removed"] else "",
             f"{status['copies']} share their voxels with another, {status['copy_groups']} "
             "series stored more than once" if status["copies"] else ""]
    said = "; ".join(e for e in extra if e)
    lines.append(f"scans: {status['scans']}" + (f" ({said})" if said else ""))
    lines.append(f"labels: {status['labels']}, exports: {status['exports']}")
    if status["runs"]:
        header = ("run", "preset", "status", "epochs", "scored", "flagged", "T", "embedded",
                  "evaluated", "created")
        rows = [(r["run_id"], r["preset"] or "—", r["status"],
                 f"{r['epochs_done']}/{_number(r['epochs'])}", str(r["scored"]), str(r["flagged"]),
                 _number(r["threshold"]), str(r["embedded"]), "yes" if r["evaluated"] else "no",
                 r["created"]) for r in status["runs"]]
        widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
        lines.append("runs:")
        lines += ["  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
                  for row in (header, *rows)]
    for job in status["running"]:
        on = f" on run {job['run_id']}" if job["run_id"] else ""
        lines.append(f"running: ctae {job['job']}{on}, pid {job['pid']} on {job['host']} since "
                     f"{job['started']} ({job['process']}{_process_note(job)})")
    if status["jobs"]:
        lines.append("last jobs:")
        lines += [f"  {j['started']}  {j['job']:<9} {j['status']:<11} "
                  f"{_number(j['seconds']) + ' s':>9}" + (f"  run {j['run_id']}" if j["run_id"] else "")
                  + (f"\n      {j['error']}" if j["error"] else "")
                  for j in status["jobs"]]
    if "disk" in status:
        use = status["disk"]
        parts = [f"volumes {_gb(use['volumes'])}"] + [f"run {r} {_gb(u)}" for r, u in use["runs"].items()]
        lines.append("store on disk: " + "; ".join(parts))
    lines.append("next:")
    lines += [f"  {step}" for step in status["next"]]
    return lines


def status_command(
    catalog: CatalogOption = None,
    store: StoreOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print it as one JSON object.")] = False,
    jobs: Annotated[int, typer.Option("--jobs", min=0, help="How many ended jobs to list.")] = 5,
    disk: Annotated[bool, typer.Option(
        "--disk", help="Also the store's use: its volumes and each run's folder (what `ctae "
        "remove --run` frees); walks the store.")] = False,
) -> None:
    """Show what the catalog holds, how far each run got, the jobs running and what to run next."""
    settings = settings_from(catalog, store, existing=True)
    try:
        status = read_status(settings, jobs, disk)
    except JobError as err:
        raise stop("status", err) from err
    if as_json:
        typer.echo(json.dumps(status, default=str))
    else:
        typer.echo("\n".join(status_lines(status)))


def register(app: typer.Typer) -> None:
    """Add `ctae status` to the CLI."""
    app.command("status")(status_command)
