"""Cached reads over ``data_catalog.views`` and the export log write (labels: review_data.py).

Every read opens a short read-only connection and closes it, so jobs can write between two
reruns. Reads are cached per catalog *version* (the modification times of the file and its
WAL), so any write — a job's, another reviewer's — shows at the next rerun. The big per-run
scan table is cached as a shared resource (no copy per rerun); the small reads as data.
"""

from __future__ import annotations

import io
import logging
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from ctae_core.io.volume_store import load_volume
from data_catalog import CatalogBusyError, connect, views
from data_catalog.export_formats import (
    LIST_FORMATS,
    BundleVolumeMissingError,
    bundle_files,
    render_list,
)
from data_catalog.filters import ExportFilter
from data_catalog.journal import journal_version
from data_catalog.snapshot_diff import diff_snapshots
from data_catalog.snapshots import (
    load_snapshot,
    record_snapshot,
    run_paths,
    snapshot_log,
    take_snapshot,
)

logger = logging.getLogger(__name__)

READ_WAIT_S = 15.0
STALE_WAIT_S = 0.0  # with an older copy at hand, one try: a busy catalog shows that copy
WRITE_WAIT_S = 8.0
TTL_S = 120
_LAST: dict[tuple, tuple[float, Any]] = {}  # newest result (and when) of each read


def catalog_exists(catalog: str) -> bool:
    """True when the catalog file is there (a read would otherwise fail)."""
    return Path(catalog).is_file()


def catalog_version(catalog: str) -> tuple[int, ...]:
    """Modification times (ns) of the catalog file, its WAL and the review journal: they change
    with every write, so a job's or another reviewer's write shows at the next rerun."""
    stamps = []
    for path in (Path(catalog), Path(f"{catalog}.wal")):
        try:
            stamps.append(path.stat().st_mtime_ns)
        except FileNotFoundError:
            stamps.append(0)
    return (*stamps, *journal_version(catalog))


def fresh_or_stale(key: tuple, read: Callable[[float], Any], max_age_s: float = 0.0) -> Any:
    """``read(wait_s)``; while a job holds the catalog, the newest earlier result of the same read
    instead of waiting (labels still show: they come from the journal). A result younger than
    ``max_age_s`` is returned as it is: reads a label must not wait for."""
    now = time.monotonic()
    if key in _LAST and now - _LAST[key][0] < max_age_s:
        return _LAST[key][1]
    wait_s = STALE_WAIT_S if key in _LAST else READ_WAIT_S
    try:
        value = read(wait_s)
    except CatalogBusyError:
        if key not in _LAST:
            raise
        return _LAST[key][1]
    _LAST[key] = (now, value)
    return value


@st.cache_data(ttl=TTL_S, show_spinner=False, max_entries=256)
def _read(
    catalog: str, version: tuple[int, ...], view: str, *args: Any, _wait_s: float = READ_WAIT_S
) -> Any:
    with connect(catalog, read_only=True, wait_s=_wait_s) as con:
        return getattr(views, view)(con, *args)


def _view(view: str, labels: bool = False, max_age_s: float = 0.0) -> Callable[..., Any]:
    def read(catalog: str, *args: Any) -> Any:
        version = catalog_version(catalog)
        version = version if labels else version[:2]  # a label does not change this read
        return fresh_or_stale(
            (catalog, view, *args),
            lambda wait_s: _read(catalog, version, view, *args, _wait_s=wait_s),
            max_age_s,
        )

    read.__name__ = view
    read.__doc__ = f"``data_catalog.views.{view}``, cached until the catalog changes."
    return read


catalog_counts = _view("catalog_counts", labels=True)
run_table = _view("run_table", max_age_s=10.0)  # on every page, in the sidebar
run_info = _view("run_info")
ingest_errors = _view("ingest_error_table")
duplicate_scans = _view("duplicate_scans")
removed_scans = _view("removed_scan_table")
train_curve = _view("train_curve")
evaluations = _view("evaluation_table")
evaluation_bases = _view("evaluation_base_table")
review_summary = _view("review_summary", labels=True)
disagreements = _view("disagreements", labels=True)
reviewer_progress = _view("reviewer_progress", labels=True)
label_history = _view("label_history", labels=True)
latent_table = _view("latent_table")
scan_hu_histogram = _view("scan_hu_histogram")
dataset_hu_histogram = _view("dataset_hu_histogram")
export_log = _view("export_log")
job_table = _view("job_table")
running_jobs = _view("running_jobs")
catalog_summary = _view("catalog_summary", labels=True)


@st.cache_resource(ttl=TTL_S, show_spinner="Reading the catalog …", max_entries=4)
def _scan_table(
    catalog: str, version: tuple[int, ...], run_id: str | None, _wait_s: float = READ_WAIT_S
) -> pd.DataFrame:
    with connect(catalog, read_only=True, wait_s=_wait_s) as con:
        return views.scan_table(con, run_id)


def scan_table(catalog: str, run_id: str | None, with_labels: bool = True) -> pd.DataFrame:
    """One row per scan with the run's scores, embedding and current verdict (shared: the
    cached frame is not copied per rerun, so callers must not modify it in place).

    ``with_labels=False``: the label columns may lag and the frame may be 30 s old; it is then
    not re-read after each label (My reviews reads labels from the journal, and must show the
    next scan at once).
    """
    version = catalog_version(catalog) if with_labels else catalog_version(catalog)[:2]
    return fresh_or_stale(
        (catalog, "scan_table", run_id, with_labels),
        lambda wait_s: _scan_table(catalog, version, run_id, wait_s),
        0.0 if with_labels else 30.0,
    )


@st.cache_resource(ttl=TTL_S, show_spinner="Reading the catalog …", max_entries=4)
def _explorer_scans(
    catalog: str,
    version: tuple[int, ...],
    run_id: str | None,
    all_clusters: bool,
    _wait_s: float = READ_WAIT_S,
) -> pd.DataFrame:
    with connect(catalog, read_only=True, wait_s=_wait_s) as con:
        return views.explorer_scans(con, run_id, all_clusters=all_clusters)


def explorer_scans(catalog: str, run_id: str | None, all_clusters: bool = False) -> pd.DataFrame:
    """The run's scored scans with only the explorer's columns (no paths or UIDs); clusters for
    every scan only when ``all_clusters``. Shared like :func:`scan_table`: do not modify."""
    version = catalog_version(catalog)
    return fresh_or_stale(
        (catalog, "explorer_scans", run_id, all_clusters),
        lambda wait_s: _explorer_scans(catalog, version, run_id, all_clusters, wait_s),
    )


@st.cache_resource(max_entries=16, show_spinner=False)
def volume(path: str) -> np.ndarray:
    """A stored array, memory-mapped (a slice reads a few KB); shared across reruns."""
    return load_volume(path, mmap=True)


def clear() -> None:
    """Forget cached reads after a write, so every page shows the new label or export."""
    _read.clear()
    _snapshots.clear()
    _scan_table.clear()
    _explorer_scans.clear()


BUNDLE_LIMIT_SCANS = 200
"""Largest NIfTI / nnU-Net bundle the page builds in memory; `ctae export` has no limit."""


def _zip(files) -> bytes:
    """The bundle's files as one zip (stored: NIfTI is compressed already; fixed timestamps)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, payload in files:
            archive.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), payload)
    return buffer.getvalue()


def prepare_export(
    catalog: str, run_id: str, filt: ExportFilter, fmt: str, who: str
) -> tuple[bytes, int, str]:
    """Snapshot the filtered scans, build the download and log it; returns (file bytes, row
    count, export id). Bundle formats come as a zip.

    Raises:
        ValueError: a bundle of more than ``BUNDLE_LIMIT_SCANS`` scans (use `ctae export`), or
            one whose stored volume is gone from the store.
    """
    from ctae_core.io.nifti import store_nifti

    with connect(catalog, read_only=True, wait_s=READ_WAIT_S) as con:
        snapshot = take_snapshot(con, run_id, filt, fmt, who)
        paths = run_paths(con, run_id).dropna(subset=["error_path"])
    rows = snapshot.manifest["row_count"]
    if fmt in LIST_FORMATS:
        payload = render_list(snapshot, fmt)
    elif rows > BUNDLE_LIMIT_SCANS:
        raise ValueError(
            f"{rows:,} scans are too many for a {fmt} bundle in the browser (at most "
            f"{BUNDLE_LIMIT_SCANS}); run `ctae export --run {run_id} --format {fmt} --out DIR`"
        )
    else:
        errors = dict(zip(paths["scan_id"], paths["error_path"], strict=True))
        try:
            payload = _zip(bundle_files(snapshot, fmt, errors, store_nifti))
        except BundleVolumeMissingError as err:  # the page says why, as for too large a bundle
            raise ValueError(str(err)) from err
    with connect(catalog, wait_s=WRITE_WAIT_S) as con:
        record_snapshot(con, snapshot, "browser download")
    clear()
    return payload, rows, snapshot.export_id


@st.cache_data(ttl=TTL_S, show_spinner=False, max_entries=16)
def _snapshots(catalog: str, version: tuple[int, int]) -> pd.DataFrame:
    with connect(catalog, read_only=True, wait_s=READ_WAIT_S) as con:
        return snapshot_log(con)


def snapshots(catalog: str) -> pd.DataFrame:
    """Every export snapshot, newest first (``data_catalog.snapshots.snapshot_log``)."""
    return _snapshots(catalog, catalog_version(catalog))


@st.cache_data(ttl=TTL_S, show_spinner=False, max_entries=16)
def snapshot_diff(catalog: str, a: str, b: str) -> tuple[dict[str, Any], pd.DataFrame]:
    """What changed from snapshot ``a`` to ``b`` and why (snapshots never change: cached)."""
    with connect(catalog, read_only=True, wait_s=READ_WAIT_S) as con:
        return diff_snapshots(load_snapshot(con, a), load_snapshot(con, b))
