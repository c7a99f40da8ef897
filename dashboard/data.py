"""Cached reads over ``data_catalog.views`` and the dashboard's two writes (labels, export log).

Every read opens a short read-only connection and closes it, so jobs can write between two
reruns. The big per-run scan table is cached as a shared resource (no copy per rerun; callers
must not modify it in place); the small reads are cached as data. ``clear()`` drops both after
the dashboard writes.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from ctae_core.io.volume_store import load_volume
from data_catalog import connect, review, views
from data_catalog.filters import ExportFilter, apply_filter, render_export

logger = logging.getLogger(__name__)

READ_WAIT_S = 15.0
WRITE_WAIT_S = 8.0
TTL_S = 30


def catalog_exists(catalog: str) -> bool:
    """True when the catalog file is there (a read would otherwise fail)."""
    return Path(catalog).is_file()


def _read(catalog: str, fn, *args):
    with connect(catalog, read_only=True, wait_s=READ_WAIT_S) as con:
        return fn(con, *args)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def catalog_counts(catalog: str) -> dict[str, int]:
    """Scans, ingest errors, runs, labels and exports in the catalog."""
    return _read(catalog, views.catalog_counts)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def run_table(catalog: str) -> pd.DataFrame:
    """All runs, newest first."""
    return _read(catalog, views.run_table)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def run_info(catalog: str, run_id: str) -> dict[str, Any] | None:
    """The run's row (threshold rule, T, spacing, …) or None."""
    return _read(catalog, views.run_info, run_id)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def ingest_errors(catalog: str) -> pd.DataFrame:
    """Inputs that ingest refused, with reasons."""
    return _read(catalog, views.ingest_error_table)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def train_curve(catalog: str, run_id: str) -> pd.DataFrame:
    """Per-epoch losses of the run."""
    return _read(catalog, views.train_curve, run_id)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def evaluations(catalog: str, run_id: str) -> pd.DataFrame:
    """The run's evaluation table (may be empty)."""
    return _read(catalog, views.evaluation_table, run_id)


@st.cache_resource(ttl=TTL_S, show_spinner="Reading the catalog …", max_entries=4)
def scan_table(catalog: str, run_id: str | None) -> pd.DataFrame:
    """One row per scan with the run's scores, embedding and the current verdict. Read-only."""
    return _read(catalog, views.scan_table, run_id)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def review_summary(catalog: str, run_id: str | None) -> dict[str, int]:
    """Flagged / reviewed / labelled-outlier / disagreement counts."""
    return _read(catalog, views.review_summary, run_id)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def disagreements(catalog: str, run_id: str | None) -> pd.DataFrame:
    """Scans whose reviewers disagree."""
    return _read(catalog, views.disagreements, run_id)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def reviewer_progress(catalog: str, run_id: str | None) -> pd.DataFrame:
    """Per-reviewer label counts and progress through the flagged scans."""
    return _read(catalog, views.reviewer_progress, run_id)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def label_history(catalog: str, scan_id: str) -> pd.DataFrame:
    """Every label given to one scan, newest first."""
    return _read(catalog, views.label_history, scan_id)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def scan_hu_histogram(catalog: str, scan_id: str) -> list[int] | None:
    """The scan's 64-bin HU histogram."""
    return _read(catalog, views.scan_hu_histogram, scan_id)


@st.cache_data(ttl=300, show_spinner=False)
def dataset_hu_histogram(catalog: str) -> list[int]:
    """The HU histogram summed over the dataset."""
    return _read(catalog, views.dataset_hu_histogram)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def export_log(catalog: str) -> pd.DataFrame:
    """The latest exports."""
    return _read(catalog, views.export_log, 20)


@st.cache_resource(max_entries=16, show_spinner=False)
def volume(path: str) -> np.ndarray:
    """A stored array, memory-mapped (a slice reads a few KB); shared across reruns."""
    return load_volume(path, mmap=True)


def clear() -> None:
    """Forget cached reads after a write, so every page shows the new label or export."""
    st.cache_data.clear()
    scan_table.clear()


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


def prepare_export(
    catalog: str, run_id: str | None, filt: ExportFilter, fmt: str, who: str
) -> tuple[bytes, int]:
    """Build the export file for a download and log it; returns (file bytes, row count)."""
    rows = apply_filter(scan_table(catalog, run_id), filt)
    payload = render_export(rows, fmt)
    with connect(catalog, wait_s=WRITE_WAIT_S) as con:
        review.log_export(
            con,
            who=who,
            run_id=run_id,
            filter_json=filt.to_json(),
            row_count=len(rows),
            fmt=fmt,
            destination="browser download",
        )
    clear()
    return payload, len(rows)
