"""Versioned curation: every export is a snapshot of the run's scans at one moment.

A snapshot stores its manifest (filter, run, model, threshold, label state, content hash of the
list) in ``exports`` and the state of *every* scan of the run in ``export_items`` — included
or not, with its flag, score, verdict, reviewers, strongest evidence and adjudication — so the
list is re-created byte for byte from the catalog and two snapshots are compared scan by scan,
with the reason each scan entered or left the list.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from data_catalog.filters import (
    ExportFilter,
    filter_mask,
    render_export,
    unflagged_count,
    why_unflagged,
)
from data_catalog.removal import STILL_REMOVED
from data_catalog.review import new_sortable_id
from data_catalog.rollback import rollback
from data_catalog.schema import SCHEMA_VERSION
from data_catalog.scores import EVIDENCE_COLUMNS, REGION_Z_COLUMNS
from data_catalog.views import run_info, scan_table

# the kinds of evidence the outlier score combines (ctae_core.outlier_score's SCORED_EVIDENCE:
# MSE_m for its size is measured and stored, not scored; the local error's two region z are
# stored beside the evidence, not kinds of it)
SCORED_EVIDENCE_COLUMNS = tuple(c for c in EVIDENCE_COLUMNS
                                if c not in ("mse_m_z", "outlier_score", *REGION_Z_COLUMNS))
STATE_COLUMNS = {  # what a snapshot keeps per scan, with its Arrow type
    "split": pa.string(),
    "score": pa.float64(),
    "mse_m": pa.float64(),
    "is_outlier": pa.bool_(),
    "cluster": pa.int32(),
    "label": pa.string(),
    "causes": pa.string(),
    "reviewers": pa.string(),
    "strongest_evidence": pa.string(),
    "strongest_z": pa.float64(),
    "adjudication": pa.string(),
}
SCAN_COLUMNS = {  # facts of the scan itself, read from ``scans`` (they do not change)
    "scan_id": pa.string(),
    "series_uid": pa.string(),
    "source_root": pa.string(),
    "source_path": pa.string(),
    "source_kind": pa.string(),
    "volume_path": pa.string(),
    "spacing_mm": pa.float64(),
    "pixel_count": pa.int64(),
    "content_hash": pa.string(),  # the stored voxels: copies of one series share it
}
LIST_COLUMNS = [  # the columns of an exported list (CSV / Parquet), reasons included
    "scan_id", "series_uid", "source_root", "source_path", "volume_path", "split",
    "pixel_count", "score", "mse_m", "is_outlier", "label", "causes", "cluster",
    "strongest_evidence", "strongest_z", "reviewers", "adjudication",
]
LIST_SCHEMA = pa.schema([(c, {**SCAN_COLUMNS, **STATE_COLUMNS}[c]) for c in LIST_COLUMNS])

_REVIEWERS = """
WITH latest AS (
    SELECT * FROM labels {as_of}
    QUALIFY row_number() OVER (
        PARTITION BY scan_id, reviewer ORDER BY created_at DESC, label_id DESC) = 1
)
SELECT scan_id, string_agg(reviewer || ': ' || verdict, ', ' ORDER BY reviewer) AS reviewers
FROM latest GROUP BY scan_id
"""
_LABEL_STATE = """
SELECT count(*) AS labels, max(created_at) AS latest_label_at,
       arg_max(label_id, (created_at, label_id)) AS latest_label_id
FROM labels
"""
_SCANS = "SELECT scan_id, source_kind FROM scans"
_RUN_PATHS = "SELECT scan_id, recon_path, error_path FROM scores WHERE run_id = ?"
_INSERT_EXPORT = """
INSERT INTO exports (export_id, who, run_id, filter_json, row_count, format, destination,
                     content_hash, manifest_json, created_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
_EXPORT = "SELECT export_id, manifest_json FROM exports WHERE export_id LIKE ? || '%'"
_ITEMS = f"""
SELECT i.position, i.scan_id, i.included, {", ".join(f"i.{c}" for c in STATE_COLUMNS)},
       s.series_uid, s.source_root, s.source_path, s.source_kind, s.volume_path, s.spacing_mm,
       s.pixel_count, s.content_hash
FROM export_items i LEFT JOIN (
    SELECT scan_id, series_uid, source_root, source_path, source_kind, volume_path, spacing_mm,
           pixel_count, content_hash FROM scans
    UNION ALL  -- a scan removed since (`ctae remove`), where it was and what was stored
    SELECT scan_id, series_uid, source_root, source_path, source_kind, volume_path, spacing_mm,
           pixel_count, content_hash FROM removed_scans r
    WHERE {STILL_REMOVED}
) s ON s.scan_id = i.scan_id
WHERE i.export_id = ? ORDER BY i.position
"""
_SNAPSHOT_LOG = """
SELECT export_id, created_at, who, run_id, format, row_count, content_hash
FROM exports WHERE manifest_json IS NOT NULL ORDER BY created_at DESC, export_id DESC
"""


@dataclass(frozen=True)
class Snapshot:
    """One export: its manifest and every scan of the run (``included`` marks the list)."""

    export_id: str
    manifest: dict[str, Any]
    rows: pd.DataFrame

    @property
    def listed(self) -> pd.DataFrame:
        """The exported list: included rows, ``LIST_COLUMNS``, in the run's score order."""
        return self.rows.loc[self.rows["included"], LIST_COLUMNS].reset_index(drop=True)

    def manifest_bytes(self) -> bytes:
        """The manifest as the JSON file written beside the export."""
        return (json.dumps(self.manifest, indent=2, sort_keys=True) + "\n").encode()


_ADJUDICATED = """
SELECT a.scan_id, arg_max(a.verdict, a.created_at) AS adjudication
FROM adjudications AS a JOIN review_sessions AS rs USING (session_id)
WHERE rs.run_id = $run_id
GROUP BY a.scan_id
"""


def adjudicated_verdicts(con: duckdb.DuckDBPyConnection, run_id: str) -> pd.Series:
    """The admin's final verdict per scan_id (the latest adjudication in the run's review
    sessions), for the export's ``adjudication`` column and the diff's "adjudicated" reason."""
    found = con.execute(_ADJUDICATED, {"run_id": run_id}).df()
    return found.set_index("scan_id")["adjudication"].astype("string")


def strongest_evidence(rows: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Name and z of the largest scored kind of evidence per row (NA when none)."""
    z = rows[list(SCORED_EVIDENCE_COLUMNS)].astype("float64")
    has = z.notna().any(axis=1)
    name = z.fillna(-np.inf).idxmax(axis=1).where(has)
    return name, z.max(axis=1)


def label_state(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """How many labels the catalog holds and the newest one: the labels a snapshot saw."""
    labels, latest_at, latest_id = con.execute(_LABEL_STATE).fetchall()[0]
    return {
        "labels": int(labels),
        "latest_label_at": latest_at.isoformat() if latest_at else None,
        "latest_label_id": latest_id,
    }


def _typed(frame: pd.DataFrame, columns: dict[str, pa.DataType]) -> pd.DataFrame:
    """Columns cast to fixed types, so a fresh and a re-created snapshot serialise alike."""
    table = pa.table({c: pa.array(frame[c].tolist(), type=t) for c, t in columns.items()})
    return table.to_pandas(types_mapper={pa.int32(): pd.Int32Dtype(), pa.int64(): pd.Int64Dtype(),
                                         pa.bool_(): pd.BooleanDtype()}.get)


def _nullable(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.astype(object).where(frame.notna(), None)


def _check_clusters(run_id: str, filt: ExportFilter, rows: pd.DataFrame) -> None:
    """Refuse a cluster the run's embedding does not have (a typo kept nothing, silently)."""
    if not filt.cluster:
        return
    present = sorted({int(c) for c in rows["cluster"].dropna()})
    if not present:
        raise ValueError(f"run {run_id!r} has no clusters yet; run `ctae embed --run {run_id}` "
                         "first, or leave --cluster out")
    if unknown := sorted(set(filt.cluster) - set(present)):
        raise ValueError(f"cluster {unknown} is not among the clusters of run {run_id!r}: "
                         f"{present} (-1: DBSCAN's noise)")


def current_rows(con: duckdb.DuckDBPyConnection, run_id: str) -> pd.DataFrame:
    """Every scan of the run now: scan facts and the per-scan state a snapshot keeps."""
    rows = scan_table(con, run_id)
    reviewers = con.execute(_REVIEWERS.format(as_of="")).df().set_index("scan_id")["reviewers"]
    kinds = con.execute(_SCANS).df().set_index("scan_id")["source_kind"]
    rows["reviewers"] = rows["scan_id"].map(reviewers)
    rows["source_kind"] = rows["scan_id"].map(kinds)
    rows["strongest_evidence"], rows["strongest_z"] = strongest_evidence(rows)
    rows["adjudication"] = rows["scan_id"].map(adjudicated_verdicts(con, run_id))
    typed = _typed(_nullable(rows), {**SCAN_COLUMNS, **STATE_COLUMNS})
    return typed


def run_paths(con: duckdb.DuckDBPyConnection, run_id: str) -> pd.DataFrame:
    """Reconstruction and |error| paths of the run's scans (NULL where not kept)."""
    return con.execute(_RUN_PATHS, [run_id]).df()


def list_hash(listed: pd.DataFrame) -> str:
    """sha256 of the list in canonical CSV (every list column, Arrow's writer)."""
    return hashlib.sha256(render_export(listed, "csv", LIST_SCHEMA)).hexdigest()


def _model(run: dict[str, Any]) -> dict[str, Any]:
    config = run.get("config_json") or ""
    return {
        "preset": run.get("preset"),
        "epochs_done": run.get("epochs_done"),
        "best_val_loss": run.get("best_val_loss"),
        "checkpoint_path": run.get("checkpoint_path"),
        "config_sha256": hashlib.sha256(config.encode()).hexdigest() if config else None,
        "spacing_mm": run.get("spacing_mm"),
    }


def take_snapshot(
    con: duckdb.DuckDBPyConnection, run_id: str, filt: ExportFilter, fmt: str, who: str
) -> Snapshot:
    """The run's scans now, the filter applied, and the manifest that describes them.

    Nothing is written: :func:`record_snapshot` stores it once the export file exists.

    Raises:
        ValueError: unknown run, or an empty name for the log.
    """
    if not who.strip():
        raise ValueError("export needs a name for the log: pass --who NAME or set the reviewer")
    run = run_info(con, run_id)
    if run is None:
        raise ValueError(
            f"run {run_id!r} is not in the catalog; list runs in the dashboard or train one "
            "with `ctae train --run NAME`"
        )
    rows = current_rows(con, run_id)
    _check_clusters(run_id, filt, rows)
    _check_flags_set(run_id, filt, rows)
    rows.insert(0, "included", filter_mask(rows, filt).astype(bool).to_numpy())
    listed = rows.loc[rows["included"], LIST_COLUMNS].reset_index(drop=True)
    export_id = new_sortable_id()
    manifest = {
        "export_id": export_id,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "who": who.strip(),
        "run_id": run_id,
        "format": fmt,
        "filter": asdict(filt),
        "model": _model(run),
        "threshold": {
            "rule": run.get("threshold_rule"),
            "params": json.loads(run["threshold_params_json"] or "null"),
            "score": run.get("threshold_score") or "mse_m",
            "T": run.get("threshold"),
        },
        "label_state": label_state(con),
        "row_count": len(listed),
        "content_hash": list_hash(listed),
        "schema_version": SCHEMA_VERSION,
    }
    return Snapshot(export_id, manifest, rows)


def _check_flags_set(run_id: str, filt: ExportFilter, rows: pd.DataFrame) -> None:
    """Refuse a filter that reads the flags while scored scans have none: a scoring clears a
    scan's flag when it writes its score and sets every flag once T is fitted, so until stop 57
    the clean training list (``exclude_outliers``) taken meanwhile, or after a scoring that
    stopped, listed the flagged outliers as clean."""
    if filt.flag is None and not filt.exclude_outliers:
        return
    unset = unflagged_count(rows)
    if unset:
        raise ValueError(
            f"{unset} of the {int(rows['score'].notna().sum())} scored scans of run {run_id!r} have "
            f"no flag yet: {why_unflagged(run_id)}; until they have one, this list would take "
            "flagged scans for clean ones")


def record_snapshot(con: duckdb.DuckDBPyConnection, snapshot: Snapshot, destination: str | None) -> None:
    """Store the snapshot: its ``exports`` row (the log) and every scan's state."""
    m = snapshot.manifest
    items = snapshot.rows[["scan_id", "included", *STATE_COLUMNS]].copy()
    items.insert(0, "position", np.arange(len(items), dtype=np.int32))
    items.insert(0, "export_id", snapshot.export_id)
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(_INSERT_EXPORT, [
            snapshot.export_id, m["who"], m["run_id"], json.dumps(m["filter"], sort_keys=True),
            m["row_count"], m["format"], destination, m["content_hash"],
            snapshot.manifest_bytes().decode(), datetime.fromisoformat(m["created_at"]),
        ])
        con.register("snapshot_items", pa.Table.from_pandas(items, preserve_index=False))
        con.execute("INSERT INTO export_items BY NAME SELECT * FROM snapshot_items")
        con.unregister("snapshot_items")
    except BaseException:
        rollback(con)
        raise
    con.execute("COMMIT")


def load_snapshot(con: duckdb.DuckDBPyConnection, export_id: str) -> Snapshot:
    """A stored snapshot, rebuilt from the catalog (``export_id`` may be a unique prefix).

    Raises:
        ValueError: no snapshot, or several, start with ``export_id``.
    """
    found = con.execute(_EXPORT, [export_id]).fetchall()
    found = [f for f in found if f[1]]
    if len(found) != 1:
        raise ValueError(
            f"export {export_id!r} matches {len(found)} snapshots; give a longer id from the "
            "export log (`ctae export --list`); exports before catalog v6 have no snapshot"
        )
    full_id, manifest_json = found[0]
    items = con.execute(_ITEMS, [full_id]).df()
    rows = _typed(_nullable(items), {"included": pa.bool_(), **SCAN_COLUMNS, **STATE_COLUMNS})
    rows["included"] = rows["included"].astype(bool)
    return Snapshot(full_id, json.loads(manifest_json), rows[["included", *SCAN_COLUMNS, *STATE_COLUMNS]])


def snapshot_log(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Every snapshot, newest first: id, time, who, run, format, rows, content hash."""
    return con.execute(_SNAPSHOT_LOG).df()
