"""The dashboard's writes: reviewers' labels (append-only history) and the export log."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Sequence

import duckdb

VERDICTS = ("inlier", "outlier", "unsure")
CAUSE_TAGS = (
    "metal implant",
    "cable or tube",
    "artefact or noise",
    "field of view",
    "anatomy",
    "broken series",
    "other",
)

_ADD_LABEL = """
INSERT INTO labels (label_id, scan_id, reviewer, verdict, causes, note, run_id, created_at)
VALUES (?, ?, ?, ?, ?, ?, ?, current_timestamp)
"""
_SCAN_EXISTS = "SELECT count(*) FROM scans WHERE scan_id = ?"
_LOG_EXPORT = """
INSERT INTO exports (export_id, who, run_id, filter_json, row_count, format, destination)
VALUES (?, ?, ?, ?, ?, ?, ?)
"""


def new_sortable_id() -> str:
    """A unique id that sorts by creation time (nanosecond clock + random suffix)."""
    return f"{time.time_ns():016x}-{os.getpid():x}-{uuid.uuid4().hex[:8]}"


def add_label(
    con: duckdb.DuckDBPyConnection,
    *,
    scan_id: str,
    reviewer: str,
    verdict: str,
    causes: Sequence[str] = (),
    note: str | None = None,
    run_id: str | None = None,
) -> str:
    """Append one reviewer's verdict on a scan directly to the catalog; returns ``label_id``.

    Waits for the catalog like any write; the dashboard records reads in review sessions
    through the journal instead (``data_catalog.sessions.add_reads``). Kept for synthetic
    catalogs, tests and the benchmark's baseline.

    Raises:
        ValueError: empty reviewer, unknown verdict or cause tag, or a scan not in the catalog.
    """
    reviewer = reviewer.strip()
    if not reviewer:
        raise ValueError("reviewer name is empty; enter your name in the sidebar before labelling")
    if verdict not in VERDICTS:
        raise ValueError(f"verdict {verdict!r} must be one of {list(VERDICTS)}")
    unknown = [c for c in causes if c not in CAUSE_TAGS]
    if unknown:
        raise ValueError(f"cause tags {unknown} are not among {list(CAUSE_TAGS)}")
    if con.execute(_SCAN_EXISTS, [scan_id]).fetchall()[0][0] == 0:
        raise ValueError(f"scan {scan_id!r} is not in the catalog; it may have been re-ingested")
    label_id = new_sortable_id()
    con.execute(
        _ADD_LABEL,
        [label_id, scan_id, reviewer, verdict, list(causes), note or None, run_id],
    )
    return label_id


def log_export(
    con: duckdb.DuckDBPyConnection,
    *,
    who: str,
    run_id: str | None,
    filter_json: str,
    row_count: int,
    fmt: str,
    destination: str | None,
) -> str:
    """Record who exported which filter's rows, how many and where; returns ``export_id``."""
    if not who.strip():
        raise ValueError("export needs a name for the log: pass --who NAME or set the reviewer")
    export_id = new_sortable_id()
    con.execute(
        _LOG_EXPORT, [export_id, who.strip(), run_id, filter_json, int(row_count), fmt, destination]
    )
    return export_id
