"""Cached reads over ``data_catalog.views`` and the dashboard's two writes (labels, export log).

Every read opens a short read-only connection and closes it, so jobs can write between two
reruns. Reads are cached per catalog *version* (the modification times of the file and its
WAL), so any write — a job's, another reviewer's — shows at the next rerun. The big per-run
scan table is cached as a shared resource (no copy per rerun); the small reads as data.
"""

from __future__ import annotations

import io
import logging
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from ctae_core.io.volume_store import load_volume
from data_catalog import connect, review, views
from data_catalog.export_formats import LIST_FORMATS, bundle_files, render_list
from data_catalog.filters import ExportFilter
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
WRITE_WAIT_S = 8.0
TTL_S = 120


def catalog_exists(catalog: str) -> bool:
    """True when the catalog file is there (a read would otherwise fail)."""
    return Path(catalog).is_file()


def catalog_version(catalog: str) -> tuple[int, int]:
    """Modification times (ns) of the catalog file and its WAL: they change with every write,
    so a job's or another reviewer's write shows at the next rerun, not after the TTL."""
    stamps = []
    for path in (Path(catalog), Path(f"{catalog}.wal")):
        try:
            stamps.append(path.stat().st_mtime_ns)
        except FileNotFoundError:
            stamps.append(0)
    return stamps[0], stamps[1]


@st.cache_data(ttl=TTL_S, show_spinner=False, max_entries=256)
def _read(catalog: str, version: tuple[int, int], view: str, *args: Any) -> Any:
    with connect(catalog, read_only=True, wait_s=READ_WAIT_S) as con:
        return getattr(views, view)(con, *args)


def _view(view: str) -> Callable[..., Any]:
    def read(catalog: str, *args: Any) -> Any:
        return _read(catalog, catalog_version(catalog), view, *args)

    read.__name__ = view
    read.__doc__ = f"``data_catalog.views.{view}``, cached until the catalog changes."
    return read


catalog_counts = _view("catalog_counts")
run_table = _view("run_table")
run_info = _view("run_info")
ingest_errors = _view("ingest_error_table")
train_curve = _view("train_curve")
evaluations = _view("evaluation_table")
review_summary = _view("review_summary")
disagreements = _view("disagreements")
reviewer_progress = _view("reviewer_progress")
label_history = _view("label_history")
scan_hu_histogram = _view("scan_hu_histogram")
dataset_hu_histogram = _view("dataset_hu_histogram")
export_log = _view("export_log")


@st.cache_resource(ttl=TTL_S, show_spinner="Reading the catalog …", max_entries=4)
def _scan_table(catalog: str, version: tuple[int, int], run_id: str | None) -> pd.DataFrame:
    with connect(catalog, read_only=True, wait_s=READ_WAIT_S) as con:
        return views.scan_table(con, run_id)


def scan_table(catalog: str, run_id: str | None) -> pd.DataFrame:
    """One row per scan with the run's scores, embedding and current verdict (shared: the
    cached frame is not copied per rerun, so callers must not modify it in place)."""
    return _scan_table(catalog, catalog_version(catalog), run_id)


@st.cache_resource(ttl=TTL_S, show_spinner="Reading the catalog …", max_entries=4)
def _explorer_scans(
    catalog: str, version: tuple[int, int], run_id: str | None, all_clusters: bool
) -> pd.DataFrame:
    with connect(catalog, read_only=True, wait_s=READ_WAIT_S) as con:
        return views.explorer_scans(con, run_id, all_clusters=all_clusters)


def explorer_scans(catalog: str, run_id: str | None, all_clusters: bool = False) -> pd.DataFrame:
    """The run's scored scans with only the explorer's columns (no paths or UIDs); clusters for
    every scan only when ``all_clusters``. Shared like :func:`scan_table`: do not modify."""
    return _explorer_scans(catalog, catalog_version(catalog), run_id, all_clusters)


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


def save_label(
    catalog: str,
    *,
    scan_id: str,
    reviewer: str,
    verdict: str,
    causes: Sequence[str],
    note: str,
    run_id: str | None,
) -> str:
    """Append a label in one short read-write connection; raises CatalogBusyError if locked."""
    with connect(catalog, wait_s=WRITE_WAIT_S) as con:
        label_id = review.add_label(
            con,
            scan_id=scan_id,
            reviewer=reviewer,
            verdict=verdict,
            causes=causes,
            note=note,
            run_id=run_id,
        )
    logger.info("label saved scan_id=%s reviewer=%s verdict=%s", scan_id, reviewer, verdict)
    clear()
    return label_id


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
        ValueError: a bundle of more than ``BUNDLE_LIMIT_SCANS`` scans (use `ctae export`).
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
        payload = _zip(bundle_files(snapshot, fmt, errors, store_nifti))
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
