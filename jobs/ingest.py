"""`ctae ingest`: DICOM series and NIfTI / MHA / NRRD files → int16 HU volumes + catalog rows.

Workers (a local process pool, or Ray tasks with ``--executor ray``) read, resample and store
one input each, time-boxed, and return outcomes; on a small tree forked local workers also
discover, a folder each (``_discover``). Only this parent process writes the catalog, in short
batched transactions. Every file, folder or series that is not ingested gets an
``ingest_errors`` row. Re-runs skip inputs whose fingerprint is unchanged; a killed run is
completed by the next one (rows are keyed by scan_id, arrays written atomically), so nothing is
duplicated. ``--redact-paths`` keeps every source path out of the catalog, the store and the
logs; an owner-only mapping file beside the store links the ids back to them.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import multiprocessing
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ctae_core.config import positive_number
from data_catalog import CatalogNotWritableError, connect
from data_catalog.removal import removed_inputs
from data_catalog.scans import (
    CATALOG_ERRORS,
    clear_ingest_errors,
    duplicate_counts,
    move_scans,
    prune_ingest_errors,
    record_ingest_errors,
    redact_scan_paths,
    scan_fingerprints,
    scan_places,
    upsert_scans,
)
from data_catalog.settings import CatalogSettings
from jobs.executors import ExecutorConfig, TaskResult, map_tasks
from jobs.ingest_limits import INPUT_TIMEOUT_S
from jobs.job_errors import NOT_READY, JobError, stop
from jobs.options import (
    CatalogOption,
    ExecutorOption,
    NoProgressOption,
    RayAddressOption,
    StoreOption,
    executor_from,
    settings_from,
)
from jobs.runtime import JobRecord, job_record, remove_dead_writers_parts, reuse_freed_memory

if TYPE_CHECKING:
    from ctae_core.io.moved_inputs import RemovedInputs, StoredPlaces
    from jobs.ingest_worker import IngestOutcome

logger = logging.getLogger(__name__)

BATCH_SIZE = 16
BATCH_SECONDS = 10.0


class CatalogWriteError(RuntimeError):
    """The catalog could not be opened or written; the job stops (exit code 2)."""


@contextmanager
def _catalog(settings: CatalogSettings) -> Iterator[Any]:
    """A short catalog connection whose failures become ``CatalogWriteError``."""
    try:
        with connect(settings.catalog_path) as con:
            yield con
    except CATALOG_ERRORS as err:
        raise _write_error(settings, err) from err


def _write_error(settings: CatalogSettings, err: BaseException) -> CatalogWriteError:
    if isinstance(err, CatalogNotWritableError):  # its message already says what to do
        return CatalogWriteError(str(err))
    return CatalogWriteError(
        f"catalog {settings.catalog_path} cannot be written ({type(err).__name__}: {err}); "
        "check the path, its permissions and the room on its disk, or wait for the process "
        "holding it"
    )


@contextmanager
def _job(settings: CatalogSettings, args: dict[str, Any]) -> Iterator[JobRecord]:
    """The ingest's ``job_runs`` record, in two catalog connections for a small tree: the first
    creates or migrates the catalog, records the start and reads the known fingerprints
    (``record.started``); the last makes the run's last writes (``record.at_end``) and records
    the end. Failing to open or write the catalog is a ``CatalogWriteError``; the first failure
    comes before any input is read."""
    with ExitStack() as stack:
        try:
            record = stack.enter_context(
                job_record(settings, "ingest", args, _known_inputs, overlap=_import_readers)
            )
        except CATALOG_ERRORS as err:
            raise _write_error(settings, err) from err
        yield record  # a raise from the body leaves through the stack: the job is `failed`
        try:
            stack.close()  # the last writes and the end
        except CATALOG_ERRORS as err:
            raise _write_error(settings, err) from err


def _known_inputs(con: Any) -> tuple[dict[str, tuple[str, str, float]], StoredPlaces, RemovedInputs]:
    """The catalog's fingerprints by scan id, where its scans were found, and the inputs
    `ctae remove` took out that stay out."""
    from ctae_core.io.moved_inputs import RemovedInputs, StoredPlaces

    return (scan_fingerprints(con), StoredPlaces(scan_places(con)),
            RemovedInputs.of(removed_inputs(con)))


def _import_readers() -> None:
    """Import what reading and storing a series needs (numpy, pydicom, SimpleITK: ~0.25 s),
    while the job's start is recorded aside; forked workers share the imports."""
    from jobs.ingest_worker import load_readers

    load_readers()


@dataclass
class IngestSummary:
    """Counts of one ingest run."""

    found: int = 0
    ingested: int = 0
    skipped_unchanged: int = 0
    found_before: int = 0
    moved: int = 0
    gone: int = 0
    kept_out: int = 0
    duplicates: int = 0
    duplicate_groups: int = 0
    failed: Counter = field(default_factory=Counter)
    skipped_files: dict[str, int] = field(default_factory=dict)
    left_out: list[str] = field(default_factory=list)
    input_bytes: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, object]:
        """The counts as JSON-ready values, recorded in ``job_runs.counts_json``."""
        return {
            "found": self.found,
            "ingested": self.ingested,
            "skipped_unchanged": self.skipped_unchanged,
            "found_before": self.found_before,
            "moved": self.moved,
            "gone": self.gone,
            "kept_out": self.kept_out,
            "duplicates": self.duplicates,
            "failed": sum(self.failed.values()),
            "failed_by_reason": dict(self.failed),
            "skipped_files": dict(self.skipped_files),
            "left_out": list(self.left_out),
            "seconds": round(self.seconds, 2),
        }

    def lines(self) -> list[str]:
        """Human-readable summary for the end of the job."""
        rate = self.ingested / self.seconds if self.seconds > 0 else 0.0
        out = [
            f"found {self.found} input(s): ingested {self.ingested}, skipped {self.skipped_unchanged}"
            f" unchanged, failed {sum(self.failed.values())} ({self.seconds:.1f} s, "
            f"{rate:.2f} series/s)"
        ]
        if self.found_before:
            out.append(f"  {self.found_before} of them ingested before from another source folder: "
                       "each stays the scan it is, under that folder")
        if self.moved:
            out.append(f"  {self.moved} of them moved since they were ingested (their old place "
                       "is gone): each stays the scan it is, at its new place")
        if self.gone:
            out.append(f"  {self.gone} scan(s) the catalog holds under these folders were not "
                       "found: their files are gone (deleted, or moved out of what was walked); "
                       "they stay in the catalog, with their stored volumes, and runs still "
                       "train on them: `ctae remove --gone` takes them out")
        if self.kept_out:
            out.append(f"  {self.kept_out} of them were taken out of the catalog by `ctae remove` "
                       "(by id, folder or as a copy): kept out; `ctae ingest --readmit` reads "
                       "them again")
        if self.duplicates:
            out.append(f"  {self.duplicates} scans of the catalog have the same voxels as another "
                       f"({self.duplicate_groups} group(s)): one series stored twice, under two "
                       "places or names; the dashboard's Overview lists them, and `ctae remove "
                       "--copies` keeps only the first of each")
        out += [f"  failed {n} × {reason}" for reason, n in sorted(self.failed.items())]
        out += [
            f"  passed over {n} file(s): {why}" for why, n in sorted(self.skipped_files.items())
        ]
        if self.left_out:
            out.append(f"  left out the catalog's own files: {', '.join(self.left_out)}")
        return out


def run_ingest(
    roots: list[Path],
    settings: CatalogSettings,
    *,
    spacing: float = 3.0,
    workers: int | None = None,
    progress: bool = True,
    executor: ExecutorConfig | None = None,
    input_timeout_s: float | None = INPUT_TIMEOUT_S,
    redact_paths: bool = False,
    readmit: bool = False,
    job: JobRecord | None = None,
) -> IngestSummary:
    """Ingest every input under ``roots`` into the catalog and store; returns the counts.

    ``executor`` says where the per-input work runs (default: a local pool of ``workers``);
    with Ray the store folder must be shared by every node (same path). Each input gets at
    most ``input_timeout_s``. With ``redact_paths`` the catalog holds pseudonymous ids where
    paths would be, and ``path_map_file(store)`` (owner-only) holds the paths. Within ``job``
    (the ingest's ``job_runs`` record) the known fingerprints are those it read at the start and
    the last batch is written with the job's end: two connections in all for a small tree.

    Raises:
        FileNotFoundError: a root does not exist.
        CatalogWriteError: the catalog cannot be opened or written (locked, bad path, disk).
    """
    from ctae_core.io.moved_inputs import at_mapped_places, place_names
    from jobs.ingest_worker import ingest_one, redacted_root, refusal_record, scan_id_for

    start = time.perf_counter()
    summary = IngestSummary()
    if job is not None:
        known, places, removed = job.started
    else:
        with _catalog(settings) as con:
            known, places, removed = _known_inputs(con)
    places = at_mapped_places(places, settings.store_dir)
    removed = removed.at_mapped_places(settings.store_dir)
    executor = executor or ExecutorConfig(kind="local", workers=workers)
    if executor.kind == "local":
        reuse_freed_memory()  # this process's and its forked workers' series reuse the memory
    worker = functools.partial(
        ingest_one,
        store_dir=str(settings.store_dir),
        spacing=spacing,
        timeout_s=input_timeout_s,
        redact=redact_paths,
    )
    from ctae_core.io.sources import distinct_roots

    roots = distinct_roots(roots)  # logs what it leaves out: once
    own = _catalog_own_files(settings)
    summary.left_out = _walked_over(own, roots)
    with _bar(progress, desc="discover", unit="file") as looked_at:  # shown at once
        discovery, done, died = _discover(
            roots, executor, worker, (known, places), spacing, looked_at.update,
            None if readmit else removed, own,
        )
    summary.found = len(discovery.sources)
    summary.skipped_files = dict(discovery.skipped_files)
    refusals = [refusal_record(r, redact=redact_paths) for r in discovery.refused]
    pseudonyms = {redacted_root(s.source_root) for s in discovery.sources} | {
        redacted_root(r.source_root) for r in discovery.refused
    }
    walked = place_names(roots)  # what this run looked through: the failures it can tell are gone
    _warn_split_over_sources(discovery.sources)
    found_as = discovery.sources
    discovery.sources = _as_ingested_before(found_as, known, places)
    summary.found_before = sum(a.source_root != b.source_root
                               for a, b in zip(discovery.sources, found_as, strict=True))
    if not readmit:
        discovery.sources = _keep_out(discovery.sources, known, removed, summary)
    moved = [(s, entry) for s in discovery.sources if (entry := places.moved(s)) is not None]
    moves, gone_roots = _moves(moved, known)
    summary.moved = len(moved)
    summary.gone = len(places.gone_under(walked, {scan_id_for(s) for s in discovery.sources}))
    walked += gone_roots  # the refusals listed under a folder that is gone are gone too
    if redact_paths:  # no moved scan's path reaches the catalog, not even for a moment
        moves = [(i, redacted_root(root), i, print_) for i, root, _, print_ in moves]
        pseudonyms |= {redacted_root(root) for root in gone_roots}
    if redact_paths:
        _write_path_map(settings, discovery)
    current = [s.source_key for s in discovery.sources] + [r.source_key for r in refusals]
    redacted = (
        {scan_id_for(s): redacted_root(s.source_root) for s in discovery.sources}
        if redact_paths
        else None
    )

    def found_errors(con: Any) -> None:  # goes with the first batch's writes
        move_scans(con, moves)
        prune_ingest_errors(con, walked, current, sorted(pseudonyms))
        record_ingest_errors(con, refusals)
        if redacted is not None:
            redact_scan_paths(con, redacted)

    writes = _Writes(settings, summary, job, found_errors)
    for refusal in refusals:
        summary.failed[refusal.reason] += 1
        logger.info("not ingested [%s] %s", refusal.reason, refusal.message)
    needed = [s for s in discovery.sources if _needs_ingest(s, known, spacing)]
    summary.skipped_unchanged = summary.found - summary.kept_out - len(needed)
    done_keys = {o.source.source_key for o in done}
    todo = [s for s in needed if s.source_key not in done_keys]
    if not died:  # after a worker died, what is left never runs in this process
        executor = _sized(executor, len(todo))
    _run_batches(worker, todo, writes, executor, progress, redact_paths, done)
    count = functools.partial(_count_duplicates, summary, job)
    if job is not None:
        job.at_end.append(count)  # after the last batch, in the connection that ends the job
    else:
        with _catalog(settings) as con:
            count(con)
    remove_dead_writers_parts(settings.volumes_dir)  # a worker killed mid-write left its part
    summary.seconds = time.perf_counter() - start
    return summary


FOLDERS_AT_ONCE = 8
"""Most folders the workers discover themselves (see ``_discover``). Their rows are written
once every folder is discovered, so a killed run loses at most these folders' rows (their
volumes are redone by the next run): kept small, so that what a kill loses stays seconds of
work, as with one batch; a larger tree is discovered here first and its rows written batch by
batch."""


def _discover(
    roots: list[Path],
    config: ExecutorConfig,
    worker: Callable[[Any], IngestOutcome],
    catalog: tuple[dict[str, tuple[str, str, float]], StoredPlaces],
    spacing: float,
    on_file: Callable[[int], object],
    keep_out: RemovedInputs | None = None,
    leave_out: frozenset[str] = frozenset(),
) -> tuple[Any, list[IngestOutcome], bool]:
    """What is under ``roots``, the outcomes of inputs already ingested while finding it, and
    whether a worker died meanwhile.

    With forked local workers and 2 to ``FOLDERS_AT_ONCE`` folders, each worker discovers a
    folder and at once ingests the new inputs it found there: both cores discover, and decoding
    starts before discovery ends (this process reading every header first left a core idle,
    ~50 ms a series). Where a series turns out to have files in two folders (each worker saw a
    piece) or a worker died, the tree is discovered again here, and only the outcomes of
    inputs found alike both ways are kept. ``catalog`` is the catalog's fingerprints and its
    scans' places; a worker leaves an input the catalog holds under another folder, or that
    moved, to this process, and does not read one of ``keep_out`` (removed from the catalog).
    The files and folders of ``leave_out`` (real paths: the catalog's own) are not walked.
    """
    from ctae_core.io.sources import discover_sources, list_folders, merge_folders

    listed = list_folders(roots, leave_out) if _forks(config) else None
    if listed is None or not 2 <= len(listed[0]) <= FOLDERS_AT_ONCE:
        return discover_sources(roots, on_file=on_file, leave_out=leave_out), [], False
    folders, refused_folders = listed
    folders = sorted(folders, key=lambda f: -len(f.files))  # the longest first: a short tail
    parts, outcomes, died = [], [], False
    # a folder whose worker dies is not retried: the tree is discovered again here, and the
    # inputs left are ingested with the usual retries
    config = dataclasses.replace(
        config, workers=min(config.local_workers, len(folders)), max_retries=0
    )
    known = catalog[0]
    task = _FolderTask(worker, spacing, keep_out)
    for folder, result in _map_inputs(task, folders, config, catalog):
        on_file(len(folder.files))
        if result.ok:
            parts.append(result.value[0])
            outcomes += result.value[1]
        else:
            died = True
            logger.info("discovering %s in a worker failed: %s", folder.files[0], result.error)
    discovery, whole = merge_folders(parts, refused_folders)
    if died or not whole:
        discovery = discover_sources(roots, leave_out=leave_out)
    return discovery, _confirmed(outcomes, discovery, known), died


def _catalog_own_files(settings: CatalogSettings) -> frozenset[str]:
    """The real paths of what the catalog keeps on disk — its file, write-ahead log, review
    journal, the dashboard's accounts, the store's volumes and runs and its path map —, which
    ingest does not walk: ``ctae ingest .`` in a project folder holding ``ctae-data/`` read every
    stored volume, reconstruction and anomaly map as a file that is not DICOM, on every run. (The
    store's folders, not the store: ``--store /data`` may hold the scans in ``/data/dicom``.)"""
    from ctae_core.io.path_map import path_map_file, path_map_lock
    from data_catalog.accounts import lock_path, users_path
    from data_catalog.journal import journal_path
    from data_catalog.session_tokens import secret_path

    catalog, path_map = settings.catalog_path, path_map_file(settings.store_dir)
    users = users_path(catalog)
    paths = [catalog, Path(f"{catalog}.wal"), journal_path(catalog), users, lock_path(users),
             secret_path(users), *settings.own_folders, path_map, path_map_lock(path_map)]
    return frozenset(os.path.realpath(p) for p in paths)


def _walked_over(own: frozenset[str], roots: list[Path]) -> list[str]:
    """Those of ``own`` that exist below one of ``roots`` (for the summary)."""
    real = [os.path.realpath(root) for root in roots]
    return sorted(p for p in own if os.path.lexists(p)
                  and any(Path(root) in Path(p).parents for root in real))


def _refuse_the_store(roots: list[Path], settings: CatalogSettings, redact: bool) -> None:
    """Refuse a source folder that is the store's volumes or runs folder or lies inside one:
    what is there are ctae's own arrays, not scans (``redact``: the message names no path).

    Raises:
        JobError: naming the folder.
    """
    for own in settings.own_folders:
        folder = Path(os.path.realpath(own))
        for root in roots:
            real = Path(os.path.realpath(root))
            if real == folder or folder in real.parents:
                where = "a source folder" if redact else str(root)
                raise JobError(f"{where} holds ctae's own stored arrays (the store's "
                               f"{folder.name}/), not scans; give the folders your DICOM series "
                               "and volume files are in")


def _refuse_missing_before_a_catalog(roots: list[Path], settings: CatalogSettings, redact: bool) -> None:
    """Refuse a source that does not exist before a first ingest creates the catalog: a mistyped
    path leaves no empty catalog behind. (Into a catalog that exists, the refusal is recorded
    as the job's failure, which ``ctae status`` lists.)

    Raises:
        JobError: naming the path (``redact``: naming none).
    """
    if settings.catalog_path.exists():
        return
    from ctae_core.io.sources import missing_source

    for root in roots:
        if not root.exists():
            where = "a source folder" if redact else str(root)
            raise JobError(f"{missing_source(where)} (no catalog was created at {settings.catalog_path})")


def _confirmed(outcomes: list[IngestOutcome], discovery, known: dict) -> list[IngestOutcome]:
    """The outcomes whose input ``discovery`` holds unchanged; a volume stored for any other
    (a piece of a series) is removed unless the catalog knows its id."""
    final = {s.source_key: s for s in discovery.sources}
    kept = []
    for outcome in outcomes:
        source = final.get(outcome.source.source_key)
        if source == outcome.source and source.refused_beside == outcome.source.refused_beside:
            kept.append(outcome)
        elif outcome.scan is not None and outcome.scan.scan_id not in known:
            Path(outcome.scan.volume_path).unlink(missing_ok=True)
    return kept


class _FolderTask:
    """In a forked worker: discover one folder, ingest each new input found in it."""

    def __init__(self, worker: Callable[[Any], IngestOutcome], spacing: float,
                 keep_out: RemovedInputs | None = None) -> None:
        self.worker, self.spacing, self.keep_out = worker, spacing, keep_out

    def __call__(self, folder) -> tuple[Any, list[IngestOutcome]]:
        from ctae_core.io.sources import discover_folder

        part = discover_folder(folder)
        moved = _as_ingested_before(part.sources, _KNOWN, _PLACES[0])
        new = [s for s, m in zip(part.sources, moved, strict=True)
               if m is s and _needs_ingest(s, _KNOWN, self.spacing)
               and not (self.keep_out is not None and _kept_out(s, _KNOWN, self.keep_out))]
        outcomes = [self.worker(source) for source in new]
        part.sources = [dataclasses.replace(s, headers=()) for s in part.sources]
        return part, outcomes


def _write_path_map(settings: CatalogSettings, discovery) -> None:
    """Record where every pseudonymous id of this run came from, before any row names it."""
    from ctae_core.io.path_map import PathLink, add_path_links, path_map_file
    from jobs.ingest_worker import refusal_id, scan_id_for

    links = [PathLink(scan_id_for(s), s.source_root, s.source_path) for s in discovery.sources]
    links += [PathLink(refusal_id(r), r.source_root, r.source_path) for r in discovery.refused]
    add_path_links(path_map_file(settings.store_dir), links)


def _warn_split_over_sources(sources: list) -> None:
    """Say where one DICOM series has files under two of the SOURCEs given: each part is read
    alone, as its own input, and is then refused for its missing slices (until stop 56 with
    nothing pointing at the other part)."""
    roots_of: dict[str, set[str]] = {}
    for source in sources:
        if source.series_uid:
            roots_of.setdefault(source.series_uid, set()).add(source.source_root)
    for uid, roots in sorted(roots_of.items()):
        if len(roots) > 1:
            common = os.path.commonpath(sorted(roots))
            logger.warning("series %s has files under %s, given as separate sources: each is read "
                           "as an input of its own; if they are parts of one series, give their "
                           "common folder %s as one source to read it whole", uid,
                           " and ".join(sorted(roots)), common)


def _keep_out(sources: list, known: dict, removed: RemovedInputs, summary: IngestSummary) -> list:
    """``sources`` without the inputs `ctae remove` took out of the catalog (``removed``;
    counted in ``summary.kept_out``). The workers that discover folders skip them alike
    (``_FolderTask``), so none of them was read meanwhile."""
    out = {s.source_key for s in sources if _kept_out(s, known, removed)}
    summary.kept_out = len(out)
    return [s for s in sources if s.source_key not in out] if out else sources


def _kept_out(source, known: dict, removed: RemovedInputs) -> bool:
    """Whether ``source`` is an input `ctae remove` took out (``removed``) and not a scan the
    catalog holds (``known``: one removed and ingested again with ``--readmit`` is a scan)."""
    from jobs.ingest_worker import scan_id_for

    scan_id = scan_id_for(source)
    return scan_id not in known and removed.holds(source, scan_id)


def _as_ingested_before(sources: list, known: dict, places: StoredPlaces) -> list:
    """Each of ``sources`` as the scan the catalog holds it as: under the catalog's source folder
    it was first ingested from (``as_ingested_before``), so that an input found again under a
    wider or narrower folder stays the scan it is, and is skipped where unchanged; or with the
    id of the scan it was before its folder moved (``StoredPlaces.identify``)."""
    from ctae_core.io.sources import as_ingested_before
    from jobs.ingest_worker import scan_id_for

    def stored(source) -> bool:
        return scan_id_for(source) in known

    found = [as_ingested_before(s, places.roots, stored) for s in sources]
    claimed: set[str] = set()
    identified = []
    for source in (places.identify(s, scan_id_for(s)) for s in found):
        if source.scan_id is not None and source.scan_id in claimed:
            source = dataclasses.replace(source, scan_id=None)  # a second copy: a scan of its own
        claimed.add(source.scan_id)
        identified.append(source)
    return identified


def _moves(
    moved: list[tuple[Any, Any]], known: dict[str, tuple[str, str, float]]
) -> tuple[list[tuple[str, str, str, str]], list[str]]:
    """The row updates of the ``moved`` inputs (each with its catalog entry,
    ``StoredPlaces.moved``) that did not change (``move_scans``; ``known`` then holds their new
    fingerprint, so they are skipped), and the source folders they moved from that are gone. A
    moved input that changed is read again into its scan."""
    from ctae_core.io.moved_inputs import unchanged_since

    moves, gone = [], set()
    for source, entry in moved:
        if not os.path.exists(entry.source_root):
            gone.add(entry.source_root)
        previous = known.get(entry.scan_id)
        if previous is not None and previous[0] and unchanged_since(source, entry):
            moves.append((entry.scan_id, source.source_root, source.source_path,
                          source.fingerprint))
            known[entry.scan_id] = (source.fingerprint, *previous[1:])
    return moves, sorted(gone)


def _needs_ingest(source, known: dict[str, tuple[str, str, float]], spacing: float) -> bool:
    from ctae_core.io.volume_store import volume_intact
    from jobs.ingest_worker import scan_id_for

    previous = known.get(scan_id_for(source))
    if previous is None:
        return True
    fingerprint, volume_path, stored_spacing = previous
    unchanged = fingerprint == source.fingerprint and abs(stored_spacing - spacing) < 1e-9
    return not (unchanged and volume_intact(volume_path))  # a damaged volume is read again


def _sized(config: ExecutorConfig, n_inputs: int) -> ExecutorConfig:
    """No more local processes than inputs: one input runs in this process, with no pool to
    start (a pool costs ~0.3 s of start-up and re-imports, as much as reading a series)."""
    if config.kind != "local" or config.local_workers <= n_inputs:
        return config
    return dataclasses.replace(config, workers=max(1, n_inputs))


_INHERITED: list[Any] = []
"""The inputs of the running local map, for forked pool workers to read from shared memory."""
_KNOWN: dict[str, tuple[str, str, float]] = {}
"""The catalog's fingerprints, for forked workers that discover (``_FolderTask``)."""
_PLACES: list[StoredPlaces] = []
"""Where the catalog's scans were found (one ``StoredPlaces``), for the same workers."""


class _ByIndex:
    """``worker(_INHERITED[index])``: a forked pool worker finds the input, with its parsed DICOM
    headers, in the memory it shares with the parent, instead of receiving a pickled copy
    (pickling them cost the parent ~35 ms a series, a third of its serial share)."""

    def __init__(self, worker: Any) -> None:
        self.worker = worker

    def __call__(self, index: int) -> Any:
        return self.worker(_INHERITED[index])


def _forks(config: ExecutorConfig) -> bool:
    """Whether ``config`` runs a pool of workers forked from this process."""
    return (
        config.kind == "local"
        and config.local_workers > 1
        and multiprocessing.get_start_method() == "fork"
    )


def _map_inputs(
    worker, todo: list, config: ExecutorConfig, catalog: tuple[dict, StoredPlaces] | None = None
) -> Iterator[tuple[Any, TaskResult]]:
    """(input, result) pairs of ``worker`` over ``todo``, in completion order; forked workers
    also find ``catalog`` (fingerprints, the scans' places) in the memory they share with this
    process."""
    if not _forks(config):
        for result in map_tasks(worker, todo, config):
            yield result.item, result
        return
    from jobs.ingest_worker import load_readers

    load_readers()
    _INHERITED[:] = todo
    from ctae_core.io.moved_inputs import StoredPlaces

    known, places = catalog or ({}, StoredPlaces())
    _KNOWN.update(known)
    _PLACES[:] = [places]
    try:
        for result in map_tasks(_ByIndex(worker), range(len(todo)), config):
            yield todo[result.item], result
    finally:
        _INHERITED.clear()
        _KNOWN.clear()
        _PLACES.clear()


def _bar(progress: bool, **kwargs: Any) -> Any:
    """A tqdm progress bar on stderr (a silent one without ``progress``)."""
    from tqdm import tqdm

    return tqdm(disable=not progress, **kwargs)


def _run_batches(
    worker,
    todo,
    writes: _Writes,
    config: ExecutorConfig,
    progress,
    redact: bool = False,
    done: list[IngestOutcome] | None = None,
) -> None:
    """Ingest ``todo`` and write the outcomes (after those ``done`` already) batch by batch."""
    batch: list[IngestOutcome] = []
    last_flush = time.monotonic()
    done = done or []
    with _bar(progress, total=len(todo) + len(done), desc="ingest", unit="series") as bar:
        bar.update(len(done))
        for start in range(0, len(done), BATCH_SIZE):
            writes.flush(done[start : start + BATCH_SIZE], last=not todo)
        for source, result in _map_inputs(worker, todo, config):
            outcome = result.value if result.ok else _died(source, result.error, redact)
            batch.append(outcome)
            bar.update(1)
            if len(batch) >= BATCH_SIZE or time.monotonic() - last_flush > BATCH_SECONDS:
                writes.flush(batch)
                batch, last_flush = [], time.monotonic()
    writes.flush(batch, last=True)


def _died(source, error: str | None, redact: bool) -> IngestOutcome:
    from data_catalog.scans import IngestErrorRecord
    from jobs.ingest_worker import IngestOutcome, redacted_root, scan_id_for, scrub_paths

    label = scan_id_for(source) if redact else source.source_path
    record = IngestErrorRecord(
        source_key=source.source_key,
        source_root=redacted_root(source.source_root) if redact else source.source_root,
        source_path=label,
        series_uid=source.series_uid,
        reason="worker_died",
        message=scrub_paths(
            f"{label}: {error}; its reader crashed or ignored the --input-timeout: check the "
            "files, or retry with fewer --workers",
            source,
            redact,
        ),
    )
    return IngestOutcome(source, error=record)


class _Writes:
    """The run's catalog writes, batch by batch, each batch counted in ``summary``: what
    discovery found (``first``: pruned and refused inputs, redacted paths) goes with the first
    batch, and within a job record the last batch goes in the connection that records the job's
    end (``JobRecord.at_end``) instead of one of its own."""

    def __init__(
        self,
        settings: CatalogSettings,
        summary: IngestSummary,
        job: JobRecord | None,
        first: Callable[[Any], None],
    ) -> None:
        self.settings, self.summary, self.job = settings, summary, job
        self.pending: list[Callable[[Any], None]] = [first]

    def flush(self, batch: list[IngestOutcome], last: bool = False) -> None:
        """Write (or, the last batch within a job, hand to the job's end) one batch."""
        if batch:
            self.pending.append(functools.partial(_write_batch, batch))
        writes, self.pending = self.pending, []
        if writes and last and self.job is not None:
            self.job.at_end.extend(writes)
        elif writes:
            with _catalog(self.settings) as con:
                for write in writes:
                    write(con)
        _count(batch, self.summary)


def _count_duplicates(summary: IngestSummary, job: JobRecord | None, con: Any) -> None:
    """Count the catalog's scans that share their voxels with another, once the last batch is
    written (a copy of a series found beside its original is a scan of its own)."""
    summary.duplicates, summary.duplicate_groups = duplicate_counts(con)
    if job is not None:
        job.counts["duplicates"] = summary.duplicates


def _write_batch(batch: list[IngestOutcome], con: Any) -> None:
    """Write one batch of outcomes in short transactions."""
    upsert_scans(con, [o.scan for o in batch if o.scan is not None])
    clear_ingest_errors(con, [o.source.source_key for o in batch if o.scan is not None])
    record_ingest_errors(con, [o.error for o in batch if o.error is not None])


def _count(batch: list[IngestOutcome], summary: IngestSummary) -> None:
    summary.ingested += sum(o.scan is not None for o in batch)
    summary.input_bytes += sum(o.input_bytes for o in batch)
    for error in (o.error for o in batch if o.error is not None):
        summary.failed[error.reason] += 1
        logger.info("not ingested [%s] %s", error.reason, error.message)


def ingest_command(
    sources: Annotated[
        list[Path],
        typer.Argument(help="Folders (searched recursively) or files: DICOM, NIfTI, MHA, NRRD."),
    ],
    catalog: CatalogOption = None,
    store: StoreOption = None,
    spacing: Annotated[
        float, typer.Option("--spacing", help="Isotropic voxel size in mm (thesis: 3.0).")
    ] = 3.0,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            help="Worker processes (default: CPU count, at most one per input; 1 or a "
            "single input runs in this process).",
        ),
    ] = None,
    executor: ExecutorOption = "local",
    ray_address: RayAddressOption = None,
    no_progress: NoProgressOption = False,
    input_timeout: Annotated[
        float,
        typer.Option(
            "--input-timeout", help="Seconds one series or file may take before it is refused."
        ),
    ] = INPUT_TIMEOUT_S,
    redact_paths: Annotated[
        bool,
        typer.Option(
            "--redact-paths",
            help="Keep folder and file names out of the catalog, store and logs; an "
            "owner-only <store>.source-paths.csv beside the store maps ids to paths.",
        ),
    ] = False,
    readmit: Annotated[
        bool,
        typer.Option(
            "--readmit",
            help="Read again the inputs `ctae remove` took out of the catalog (by id, folder "
            "or as a copy), which ingest otherwise keeps out.",
        ),
    ] = False,
) -> None:
    """Ingest CT scans: HU volumes at isotropic spacing into the store, facts into the catalog.

    Exits 1 when nothing could be ingested, 2 when the catalog cannot be written.
    """
    settings = settings_from(catalog, store)
    if not positive_number(spacing):  # a NaN would fail every scan as damaged
        raise typer.BadParameter(f"--spacing must be positive, not {spacing}")
    if not input_timeout > 0:
        raise typer.BadParameter(f"--input-timeout must be positive, not {input_timeout}")
    config = executor_from(executor, ray_address, workers)
    try:
        _refuse_the_store(sources, settings, redact_paths)
        _refuse_missing_before_a_catalog(sources, settings, redact_paths)
    except JobError as err:
        raise stop("ingest", err) from err
    shown = [str(s) for s in sources]
    if redact_paths:
        from jobs.ingest_worker import redacted_root

        shown = [redacted_root(str(s.resolve())) for s in sources]
    args = {
        "sources": shown,
        "spacing": spacing,
        "workers": workers,
        "executor": executor,
        "ray_address": ray_address,
        "input_timeout": input_timeout,
        "redact_paths": redact_paths,
        "readmit": readmit,
    }
    try:
        with _job(settings, args) as job:
            summary = run_ingest(
                sources,
                settings,
                spacing=spacing,
                progress=not no_progress,
                executor=config,
                input_timeout_s=input_timeout,
                redact_paths=redact_paths,
                readmit=readmit,
                job=job,
            )
            job.counts.update(summary.as_dict())
    except FileNotFoundError as err:
        shown = "a source folder does not exist; check the paths" if redact_paths else str(err)
        raise stop("ingest", JobError(shown)) from err
    except (CatalogWriteError, RuntimeError) as err:  # RuntimeError: Ray missing or unreachable
        raise stop("ingest", err) from err
    for line in summary.lines():
        typer.echo(line)
    if summary.ingested + summary.skipped_unchanged + summary.kept_out == 0:
        raise stop("ingest", JobError("nothing could be ingested; see the reasons above",
                                      exit_code=NOT_READY))


def register(app: typer.Typer) -> None:
    """Add `ctae ingest` to the CLI."""
    app.command("ingest")(ingest_command)
