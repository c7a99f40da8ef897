"""`ctae remove`: take scans out of the catalog — those whose files are gone, the later copies of
series stored twice, those under a folder (a patient's consent withdrawn, a batch not wanted) or
named ones — with every run's rows of them and their stored files. Their labels, review sessions
and export snapshots stay (data_catalog/removal.py), and later ingests keep their inputs out
(``ctae_core.io.moved_inputs.RemovedInputs``). Nothing is removed without ``--yes`` (or a yes at
a terminal).

Stored files go first, then the rows in one transaction: a removal that is stopped half-way
leaves scans whose stored files are missing, and the same command run again finishes it.
"""

from __future__ import annotations

import getpass
import logging
import os
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer

from ctae_core.io.moved_inputs import StoredPlaces, at_mapped_places, place_names
from ctae_core.io.path_map import add_path_links, path_map_file
from data_catalog import CatalogBusyError, CatalogError, CatalogUnreadableError, connect
from data_catalog.removal import (
    RemovalPlan,
    RunRemovalPlan,
    files_read_by,
    known_scans,
    later_copies,
    plan_removal,
    plan_run_removal,
    remove_run,
    remove_scans,
    removed_ids,
)
from data_catalog.scans import scan_places
from data_catalog.settings import CatalogSettings
from jobs.job_errors import JobError, stop
from jobs.options import CatalogOption, StoreOption, settings_from
from jobs.runtime import interrupt_dead_jobs, job_record, refuse_a_busy_run

logger = logging.getLogger(__name__)

LISTED = 20
"""Scans listed by name before the rest are counted."""
BESIDE_WAIT_S = 10.0
"""How long a removal waits for another catalog beside this one that is locked (``shared_files``)."""


@dataclass
class Selection:
    """The scans chosen, each with how (gone | named | under | copy), and what was passed over.

    Attributes:
        reasons: scan id → how it was chosen, in the order found.
        places: each chosen scan's place (folder or file), as the catalog or the path map gives it.
        missing_roots: Source folders none of whose scans is there (a disk not mounted, its
            empty mount point, an archive moved) → their scans, which ``--gone`` does not count
            as gone.
        unmapped: Scans ingested with ``--redact-paths`` whose place this user cannot read.
    """

    reasons: dict[str, str] = field(default_factory=dict)
    places: dict[str, str] = field(default_factory=dict)
    missing_roots: dict[str, int] = field(default_factory=dict)
    unmapped: int = 0


def select_scans(
    places: StoredPlaces,
    scan_ids: list[str],
    gone: bool,
    under: list[Path],
    copies: list[str] | None = None,
) -> Selection:
    """The scans ``scan_ids`` names (each must be in the catalog); or those whose place is gone
    (``gone``) and the ``copies`` (the later copies of series stored twice), each below
    ``under`` where given; or, with neither, every scan below ``under``.

    A source folder none of whose scans is there — not there at all, or empty — is no sign that
    its scans were deleted (a disk not mounted leaves its mount point empty; an archive moved:
    `ctae ingest` finds it again), so ``gone`` counts its scans only where ``under`` names it or
    a folder above it.

    Raises:
        JobError: an id the catalog does not hold.
    """
    chosen = Selection()
    entries = places.by_id
    if scan_ids:
        unknown = [i for i in scan_ids if i not in entries]
        if unknown:
            raise JobError(f"not in the catalog: {', '.join(unknown[:5])} ({len(unknown)} of "
                           f"the {len(scan_ids)} scan ids given); the dashboard's Explorer and "
                           "`ctae export` give the ids of the catalog's scans")
        chosen.reasons = dict.fromkeys(scan_ids, "named")
        return _with_places(chosen, entries)
    folders = place_names(under)
    below = places.under(folders) if folders else list(entries)
    roots = [r for r in places.roots if os.path.isabs(r)]
    if gone or folders:  # places this user cannot read cannot be gone or below a folder
        chosen.unmapped = sum(not os.path.isabs(e.source_root) for e in entries.values())
    if gone:
        present = [r for r in roots if os.path.exists(r)]
        chosen.reasons = dict.fromkeys(places.gone_under(folders or present, set()), "gone")
        if not folders:  # a folder none of whose scans is there: an empty mount point, likely
            held = Counter(e.source_root for e in entries.values() if e.source_root in roots)
            missing = Counter(entries[i].source_root for i in chosen.reasons)
            emptied = {root for root, n in missing.items() if n == held[root]}
            chosen.reasons = {i: r for i, r in chosen.reasons.items()
                              if entries[i].source_root not in emptied}
            chosen.missing_roots = {root: n for root, n in sorted(held.items())
                                    if root not in present or root in emptied}
    if copies is not None:
        inside = set(below)
        chosen.reasons.update((i, "copy") for i in copies if i in inside and i not in chosen.reasons)
    if not gone and copies is None:
        chosen.reasons = dict.fromkeys(below, "under")
    return _with_places(chosen, entries)


def _with_places(chosen: Selection, entries: dict[str, Any]) -> Selection:
    chosen.places = {i: os.path.join(entries[i].source_root, entries[i].source_path)
                     for i in chosen.reasons}
    return chosen


def _size_mb(paths: list[str]) -> float:
    return sum(os.path.getsize(p) for p in paths if os.path.isfile(p)) / 1e6


def describe(chosen: Selection, plan: RemovalPlan, shared: int = 0) -> list[str]:
    """What removing ``plan``'s scans takes away and keeps (``shared``: of its files, those
    another catalog beside this one reads), in lines for the terminal."""
    how = Counter(chosen.reasons[i] for i in plan.scan_ids)
    lines = [f"{len(plan.scan_ids)} scan(s) to remove ("
             + ", ".join(f"{n} {reason}" for reason, n in sorted(how.items())) + "):"]
    lines += [f"  {i}  {chosen.places.get(i, '?')}" for i in plan.scan_ids[:LISTED]]
    if len(plan.scan_ids) > LISTED:
        lines.append(f"  … and {len(plan.scan_ids) - LISTED} more")
    runs = ", ".join(f"{table} {n}" for table, n in plan.rows.items() if table != "scans")
    lines.append(f"  rows that go: {runs}")
    lines.append(f"  files that go: {len(plan.files)} ({_size_mb(plan.files):.1f} MB), the stored "
                 "volumes and the runs' reconstructions and anomaly maps" + (
                     f"; {shared} of them stay, another catalog beside this one reading them"
                     if shared else ""))
    lines.append(f"  kept: {plan.labels} label(s) of them, with their review sessions" + (
        f"; {plan.snapshots} export snapshot(s) that listed them, whose lists `ctae export "
        "--recreate` still writes" if plan.snapshots else ""))
    return lines


def passed_over(chosen: Selection) -> list[str]:
    """What ``--gone`` could not judge, in lines for the terminal."""
    lines = [f"not counted as gone: {n} scan(s) under {root}, none of which is there (a disk "
             "not mounted, or its empty mount point? an archive moved? `ctae ingest NEW_PLACE` "
             f"finds a moved archive again); `ctae remove --gone --under {root}` removes them"
             for root, n in chosen.missing_roots.items()]
    if chosen.unmapped:
        lines.append(f"not looked at: {chosen.unmapped} scan(s) ingested with --redact-paths, "
                     "whose places are in a path map this user cannot read; the user who "
                     "ingested them can remove them, or name them by id")
    return lines


def _delete(files: list[str]) -> tuple[int, list[str]]:
    """Delete ``files``; (how many were deleted, why those that could not be were not)."""
    deleted, errors = 0, []
    for path in files:
        try:
            os.unlink(path)
            deleted += 1
        except FileNotFoundError:
            pass  # deleted before: by a removal that was stopped, or by hand
        except OSError as err:
            errors.append(f"{path}: {err.strerror or err}")
    return deleted, errors


def catalogs_beside(settings: CatalogSettings, files: list[str]) -> list[Path]:
    """The other DuckDB files that may share a store with this catalog: those in its folder and
    in the folder above each store that ``files`` lie in (``<store>/volumes/…``,
    ``<store>/runs/…``) — where a catalog copied beside this one (``cp catalog.duckdb
    trial.duckdb``), or a copy of the whole folder still reading the first store, finds it."""
    folders = {settings.catalog_path.parent, settings.store_dir.parent}
    own = {folder.name for folder in settings.own_folders}  # volumes/, runs/
    for path in {Path(os.path.dirname(f)) for f in files}:
        store = next((p.parent for p in (path, *path.parents) if p.name in own), None)
        if store is not None:
            folders.add(store.parent)
    this = os.path.realpath(settings.catalog_path)
    found = {os.path.realpath(f): f for folder in folders if folder.is_dir()
             for f in sorted(folder.glob("*.duckdb"))}
    return [Path(f) for real, f in sorted(found.items()) if real != this]


def shared_files(settings: CatalogSettings, files: list[str]) -> tuple[set[str], list[str]]:
    """Those of ``files`` another catalog beside this one reads (``catalogs_beside``), which a
    removal keeps, and a line for each catalog that keeps some. Every file is kept where one of
    them cannot be read now (locked by its own job): whether it reads them is not known."""
    kept: set[str] = set()
    said = []
    for other in catalogs_beside(settings, files) if files else []:
        try:
            reads = files_read_by(other, files, BESIDE_WAIT_S)
        except CatalogBusyError:
            kept |= set(files)
            said.append(f"{other} is locked by another process: whether it reads these files is "
                        "not known, so every one stays in the store (no row names them once the "
                        "scans are removed: delete them by hand if it does not read them, or "
                        "remove the scans when it is free)")
            continue
        except CatalogUnreadableError:
            continue  # no catalog
        if reads:
            kept |= reads
            said.append(f"{other} reads {len(reads)} of these stored file(s) too (it shares "
                        "this store): they stay")
    return kept, said


def run_remove(settings: CatalogSettings, reasons: dict[str, str], args: dict[str, Any]) -> dict[str, Any]:
    """Delete the stored files of the scans of ``reasons`` that are still in the catalog —
    except those another catalog beside it reads —, then their rows (one transaction), then
    their links in the store's path map; the counts."""
    with job_record(settings, "remove", args) as record:
        with connect(settings.catalog_path, read_only=True) as con:
            plan = plan_removal(con, known_scans(con, list(reasons)))
        kept, said = shared_files(settings, plan.files)
        for line in said:  # the list before the yes said them (`_remove_scans`)
            logger.info("%s", line)
        deleted, errors = _delete([f for f in plan.files if f not in kept])
        with connect(settings.catalog_path) as con:
            removed = remove_scans(con, {i: reasons[i] for i in plan.scan_ids}, record.job_id,
                                   getpass.getuser())
            # the links of the scans removed as gone go: the others stay, so that ingest keeps
            # those inputs out under a wider or narrower folder too
            stale = removed_ids(con, gone_only=True)
        try:
            add_path_links(path_map_file(settings.store_dir), [], drop=stale)
        except OSError as err:  # another user's map
            errors.append(f"{path_map_file(settings.store_dir)}: {err.strerror or err}")
        record.counts.update(removed=removed, files_deleted=deleted, file_errors=len(errors),
                             files_shared=len(kept), labels_kept=plan.labels,
                             snapshots_kept=plan.snapshots)
    for error in errors:
        logger.warning("not deleted: %s", error)
    return record.counts


def _check_run(con: Any, settings: CatalogSettings, run_id: str) -> None:
    """Refuse a run the catalog does not hold, or one an open review session reads."""
    from data_catalog.journal import open_journal
    from data_catalog.scores import run_ids  # with pandas: only for --run
    from data_catalog.sessions import open_sessions_on

    known = run_ids(con)
    if run_id not in known:
        raise JobError(f"run {run_id!r} is not in {settings.catalog_path}; its runs: "
                       f"{', '.join(known) or 'none'}")
    with open_journal(settings.catalog_path, write=False) as j:
        if sessions := open_sessions_on(j, run_id):
            raise JobError(f"run {run_id!r} is read by open review session(s) "
                           f"{', '.join(map(repr, sessions))}: their reviewers see its model; "
                           "close them on the Review sessions page first")


def describe_run(plan: RunRemovalPlan, run_dir: Path) -> list[str]:
    """What removing ``plan``'s run takes away and keeps, in lines for the terminal."""
    rows = ", ".join(f"{table} {n}" for table, n in plan.rows.items() if table != "runs")
    return [f"run {plan.run_id} to remove:",
            f"  rows that go: {rows}",
            f"  files that go: {run_dir} ({_size_mb(plan.files):.1f} MB in {len(plan.files)} "
            "file(s) the catalog names: its checkpoint, reconstructions and anomaly maps)",
            f"  kept: the scans, {plan.labels} label(s) given while looking at it, and "
            f"{plan.snapshots} export snapshot(s) of it"]


def _confirm(count: str, yes: bool, dry_run: bool) -> bool:
    """Whether to go on: not on a dry run; with ``--yes``, or a yes at a terminal.

    Raises:
        JobError: neither ``--yes`` nor a terminal to ask at.
    """
    if dry_run:
        typer.echo("dry run: nothing removed")
        return False
    if yes:
        return True
    if not sys.stdin.isatty():
        raise JobError("nothing removed: run it again with --yes to remove them (or --dry-run "
                       "to list them only)")
    if typer.confirm(f"Remove {count}?", default=False):
        return True
    typer.echo("nothing removed")
    return False


def run_remove_run(settings: CatalogSettings, run_id: str) -> dict[str, Any]:
    """Delete run ``run_id``'s files (its folder in the store, and any file the catalog names
    elsewhere), then its rows (one transaction); the counts."""
    import shutil

    with job_record(settings, "remove", {"run": run_id}) as record:
        with connect(settings.catalog_path, read_only=True) as con:
            plan = plan_run_removal(con, run_id)
        run_dir = _run_folder(settings, plan)
        on_disk = [str(p) for p in run_dir.rglob("*") if p.is_file()] if run_dir.is_dir() else []
        kept, said = shared_files(settings, sorted(set(plan.files) | set(on_disk)))
        for line in said:
            logger.warning("%s", line)
        deleted, errors = _delete([f for f in plan.files if f not in kept])
        shared_folder = any(Path(f).is_relative_to(run_dir) for f in kept)
        if not shared_folder:
            shutil.rmtree(run_dir, ignore_errors=True)
        with connect(settings.catalog_path) as con:
            removed = remove_run(con, run_id)
        record.counts.update(runs_removed=removed, files_deleted=deleted, file_errors=len(errors),
                             files_shared=len(kept), folder_kept=shared_folder,
                             labels_kept=plan.labels, snapshots_kept=plan.snapshots)
    for error in errors:
        logger.warning("not deleted: %s", error)
    return record.counts


def _run_folder(settings: CatalogSettings, plan: RunRemovalPlan) -> Path:
    """The run's folder: the one its checkpoint is in, as the catalog names it (a catalog copied
    with its project folder may still read the first project's store), else where this store
    keeps a run of that name."""
    if plan.checkpoint and Path(plan.checkpoint).parent.name == plan.run_id:
        return Path(plan.checkpoint).parent
    return settings.run_dir(plan.run_id)


def _remove_a_run(settings: CatalogSettings, run_id: str, yes: bool, dry_run: bool) -> None:
    """`ctae remove --run RUN`: list, confirm, remove."""
    with connect(settings.catalog_path) as con:
        interrupt_dead_jobs(con)
        refuse_a_busy_run(con, "remove", {})
        _check_run(con, settings, run_id)
        plan = plan_run_removal(con, run_id)
    typer.echo("\n".join(describe_run(plan, _run_folder(settings, plan))))
    if not _confirm(f"run {run_id}", yes, dry_run):
        return
    counts = run_remove_run(settings, run_id)
    folder = "" if counts["folder_kept"] else ", with its folder in the store"
    typer.echo(f"removed run {run_id} and {counts['files_deleted']} of its file(s){folder}; kept "
               f"{counts['labels_kept']} label(s) and {counts['snapshots_kept']} export "
               "snapshot(s)")
    if counts["files_shared"]:
        typer.echo(f"kept {counts['files_shared']} of its file(s): another catalog beside this "
                   "one reads them (see above)")


def remove(
    scan_ids: Annotated[list[str] | None, typer.Argument(
        show_default=False,
        help="Scans to remove, by id (as the scan table, the Explorer and exports give them).")] = None,
    gone: Annotated[bool, typer.Option(
        "--gone", help="The scans whose files are no longer where they were ingested from.")] = False,
    copies: Annotated[bool, typer.Option(
        "--copies", help="Of each series stored twice (the same voxels), every copy but the first "
        "by source path.")] = False,
    under: Annotated[list[Path] | None, typer.Option(
        "--under", show_default=False,
        help="Only scans found below this folder (alone: every one of them); repeat for several.")] = None,
    run: Annotated[str | None, typer.Option(
        "--run", show_default=False,
        help="Remove this run instead: its model, scores, embedding, evaluations and stored "
        "maps; the scans stay.")] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Remove without asking.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would go, remove nothing.")] = False,
    catalog: CatalogOption = None,
    store: StoreOption = None,
) -> None:
    """Remove scans from the catalog, with every run's rows of them and their stored files."""
    scan_ids, under = scan_ids or [], under or []
    if run is not None and (scan_ids or gone or copies or under):
        raise stop("remove", JobError("--run removes a run and keeps its scans; remove scans "
                                      "in a command of their own"))
    if scan_ids and (gone or copies or under):
        raise stop("remove", JobError("give scan ids, or --gone, --copies and --under, not both"))
    if run is None and not (scan_ids or gone or copies or under):
        raise stop("remove", JobError("say which scans to remove: scan ids, --gone (files no "
                                      "longer there), --copies (series stored twice) or --under "
                                      "FOLDER"))
    settings = settings_from(catalog, store, follow_store=True, existing=True)
    try:
        if run is not None:
            _remove_a_run(settings, run, yes, dry_run)
        else:
            _remove_scans(settings, scan_ids, gone, copies, under, yes, dry_run)
    except CatalogError:
        raise
    except JobError as err:
        raise stop("remove", err) from err


def _recorded_folders(under: list[Path], redacted: bool) -> list[str]:
    """The ``--under`` folders as the job's row keeps them: as given, or, in a catalog that
    holds no paths (``--redact-paths``), as the pseudonyms ingest gives such folders (until stop
    59 a withdrawn patient's folder name reached ``job_runs`` there)."""
    if not redacted:
        return [str(u) for u in under]
    from jobs.ingest_worker import redacted_root

    return [redacted_root(os.path.abspath(u)) for u in under]


def _remove_scans(settings: CatalogSettings, scan_ids: list[str], gone: bool, copies: bool,
                  under: list[Path], yes: bool, dry_run: bool) -> None:
    """`ctae remove` of scans: choose, list, confirm, remove."""
    with connect(settings.catalog_path) as con:
        interrupt_dead_jobs(con)
        refuse_a_busy_run(con, "remove", {})  # before the list, not after a yes
        stored = StoredPlaces(scan_places(con))
        redacted = any(not os.path.isabs(root) for root in stored.roots)  # --redact-paths
        places = at_mapped_places(stored, settings.store_dir)
        chosen = select_scans(places, scan_ids, gone, under, later_copies(con) if copies else None)
        plan = plan_removal(con, list(chosen.reasons))
    for line in passed_over(chosen):
        typer.echo(line, err=True)
    if not plan.scan_ids:
        what = " or ".join([w for w, asked in (("is gone", gone), ("is a copy of another",
                            copies)) if asked]) or "lies"
        below = f" below {', '.join(map(str, under))}" if under else ""
        typer.echo(f"nothing to remove: no scan of the catalog {what}{below}")
        return
    shared, said = shared_files(settings, plan.files)
    typer.echo("\n".join([*said, *describe(chosen, plan, len(shared))]))
    if not _confirm(f"these {len(plan.scan_ids)} scan(s)", yes, dry_run):
        return
    args = {"scan_ids": scan_ids, "gone": gone, "copies": copies,
            "under": _recorded_folders(under, redacted), "redact_paths": redacted}
    counts = run_remove(settings, chosen.reasons, args)
    typer.echo(f"removed {counts['removed']} scan(s) from the catalog and {counts['files_deleted']} "
               f"file(s) from the store; kept {counts['labels_kept']} label(s) and "
               f"{counts['snapshots_kept']} export snapshot(s). Runs trained with them keep their "
               "model, threshold and the other scans' scores: train a new run to leave them out "
               "of training.")
    if any(reason != "gone" for reason in chosen.reasons.values()):
        typer.echo("`ctae ingest` keeps the inputs of the scans removed by id, folder or as a "
                   "copy out of the catalog from now on (`ctae ingest --readmit` reads them "
                   "again); their files are left where they are.")
    if counts["files_shared"]:
        typer.echo(f"kept {counts['files_shared']} stored file(s) another catalog beside this one "
                   "reads (see above)")
    if counts["file_errors"]:
        typer.echo(f"{counts['file_errors']} file(s) could not be deleted (see above): delete "
                   "them by hand", err=True)


def register(app: typer.Typer) -> None:
    """Add `ctae remove` to the CLI."""
    app.command("remove")(remove)
