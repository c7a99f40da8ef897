"""Scans leaving the catalog (`ctae remove`): every row a job wrote for them goes, and a line of
``removed_scans`` keeps where each was found and what was stored. What people wrote about them
stays: labels, review sessions, adjudications, the audit log and the export snapshots (whose
lists are written again from ``removed_scans``, data_catalog/snapshots.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from data_catalog.connection import read_as_found, transaction

if TYPE_CHECKING:
    import pandas as pd

RUN_TABLES = ("splits", "scores", "scan_failures", "embeddings")
"""The tables whose rows a run wrote for a scan."""
RUN_ONLY_TABLES = ("train_history", "evaluations", "evaluation_bases")
"""The tables whose rows a run wrote about itself (besides ``runs``)."""

_IDS = "scan_id IN (SELECT unnest(?::VARCHAR[]))"
_PATHS = """
SELECT scan_id, volume_path AS path FROM scans
UNION ALL SELECT scan_id, recon_path FROM scores WHERE recon_path IS NOT NULL
UNION ALL SELECT scan_id, error_path FROM scores WHERE error_path IS NOT NULL
"""
_FILES = f"""
WITH paths AS ({_PATHS})
SELECT DISTINCT path FROM paths
WHERE {_IDS} AND ends_with(path, '/' || scan_id || '.npy')  -- written for this scan
  AND path NOT IN (SELECT path FROM paths WHERE NOT {_IDS})  -- and no scan that stays reads it
ORDER BY path
"""
_KEEP = """
INSERT OR REPLACE INTO removed_scans (scan_id, source_kind, source_root, source_path, series_uid,
    volume_path, spacing_mm, pixel_count, content_hash, reason, job_id, removed_by)
SELECT s.scan_id, s.source_kind, s.source_root, s.source_path, s.series_uid, s.volume_path,
       s.spacing_mm, s.pixel_count, s.content_hash, r.reason, ?, ?
FROM scans s JOIN (SELECT unnest(?::VARCHAR[]) AS scan_id, unnest(?::VARCHAR[]) AS reason) r
    USING (scan_id)
"""
_LATER_COPIES = """
SELECT scan_id FROM scans
QUALIFY row_number() OVER (PARTITION BY content_hash ORDER BY source_root, source_path, scan_id) > 1
ORDER BY source_root, source_path, scan_id
"""
STILL_REMOVED = "NOT EXISTS (SELECT 1 FROM scans WHERE scans.scan_id = r.scan_id)"
"""SQL, on ``removed_scans r``: the scan has not been ingested again since it was removed."""
_REMOVED_TABLE = f"""
SELECT scan_id, reason, removed_by, removed_at, source_kind, source_root, source_path
FROM removed_scans r WHERE {STILL_REMOVED}
ORDER BY removed_at DESC, scan_id
"""
_LISTED_IN = f"SELECT count(DISTINCT export_id) FROM export_items WHERE included AND {_IDS}"


@dataclass(frozen=True)
class RemovalPlan:
    """What removing some scans takes away and what it keeps.

    Attributes:
        scan_ids: The scans, each in the catalog.
        rows: Rows that go, by table (``scans`` and each of ``RUN_TABLES``).
        files: The stored volumes and the runs' reconstructions and anomaly maps of these scans
            (each named for its scan: ``<store>/volumes/<scan id>.npy`` and the like).
        labels: The reads of them (kept, with their review sessions).
        snapshots: The export snapshots that listed one of them (kept; still written again).
    """

    scan_ids: list[str]
    rows: dict[str, int]
    files: list[str]
    labels: int
    snapshots: int


def _count(con: duckdb.DuckDBPyConnection, table: str, ids: list[str]) -> int:
    (count,), = con.execute(f"SELECT count(*) FROM {table} WHERE {_IDS}", [ids]).fetchall()
    return count


def known_scans(con: duckdb.DuckDBPyConnection, scan_ids: Sequence[str]) -> list[str]:
    """Those of ``scan_ids`` the catalog holds, in the order given."""
    found = {row[0] for row in con.execute(f"SELECT scan_id FROM scans WHERE {_IDS}",
                                           [list(scan_ids)]).fetchall()}
    return [scan_id for scan_id in scan_ids if scan_id in found]


@dataclass(frozen=True)
class RunRemovalPlan:
    """What removing a run takes away and keeps.

    Attributes:
        run_id: The run, in the catalog.
        rows: Rows that go, by table (``runs``, ``RUN_TABLES``, ``RUN_ONLY_TABLES``).
        files: Its checkpoint and its reconstructions and anomaly maps as the catalog names them.
        labels: Reads given while looking at it (kept).
        snapshots: Export snapshots taken of it (kept).
        checkpoint: Its checkpoint as the catalog names it (None before training saved one).
    """

    run_id: str
    rows: dict[str, int]
    files: list[str]
    labels: int
    snapshots: int
    checkpoint: str | None = None


def plan_run_removal(con: duckdb.DuckDBPyConnection, run_id: str) -> RunRemovalPlan:
    """What removing run ``run_id`` (a run of the catalog) would take away and keep."""
    def count(table: str) -> int:
        return con.execute(f"SELECT count(*) FROM {table} WHERE run_id = ?", [run_id]).fetchone()[0]

    rows = {table: count(table) for table in ("runs", *RUN_TABLES, *RUN_ONLY_TABLES)}
    (checkpoint,), = con.execute("SELECT checkpoint_path FROM runs WHERE run_id = ?",
                                 [run_id]).fetchall()
    maps = [row[0] for row in con.execute(
        "SELECT recon_path FROM scores WHERE run_id = ? AND recon_path IS NOT NULL "
        "UNION ALL SELECT error_path FROM scores WHERE run_id = ? AND error_path IS NOT NULL",
        [run_id] * 2).fetchall()]
    files = [checkpoint, *maps] if checkpoint is not None else maps
    return RunRemovalPlan(run_id, rows, files, count("labels"), count("exports"), checkpoint)


def remove_run(con: duckdb.DuckDBPyConnection, run_id: str) -> int:
    """Remove run ``run_id`` and every row it wrote, in one transaction; its labels, review
    sessions and export snapshots stay. Returns how many runs went (0 or 1). Its files are the
    caller's to delete (``plan_run_removal``)."""
    with transaction(con):
        for table in (*RUN_TABLES, *RUN_ONLY_TABLES):
            con.execute(f"DELETE FROM {table} WHERE run_id = ?", [run_id])
        (removed,), = con.execute("DELETE FROM runs WHERE run_id = ?", [run_id]).fetchall()
    return removed


def later_copies(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The scans whose stored voxels an earlier scan has too (one series stored twice), all but
    the first of each by source folder and path: the copies ``ExportFilter.drop_copies`` leaves
    out of a list."""
    return [row[0] for row in con.execute(_LATER_COPIES).fetchall()]


_NAMED = f"""
SELECT path FROM ({_PATHS} UNION ALL SELECT NULL, checkpoint_path FROM runs)
WHERE path IN (SELECT unnest(?::VARCHAR[]))
"""


def files_read_by(catalog: Path | str, files: Sequence[str], wait_s: float = 10.0) -> set[str]:
    """Those of ``files`` that the catalog at ``catalog`` (another one than the removal's,
    opened read-only as it is) names: a stored volume, reconstruction, anomaly map or checkpoint
    it reads. A DuckDB file that is no ctae catalog names none.

    Raises:
        CatalogBusyError: it stayed locked for ``wait_s``.
        CatalogUnreadableError: it is no DuckDB file.
    """
    with read_as_found(catalog, wait_s=wait_s) as con:
        try:
            return {row[0] for row in con.execute(_NAMED, [list(files)]).fetchall()}
        except duckdb.CatalogException:  # no scans / scores / runs table: not a ctae catalog
            return set()


def plan_removal(con: duckdb.DuckDBPyConnection, scan_ids: Sequence[str]) -> RemovalPlan:
    """What removing ``scan_ids`` (scans of the catalog) would take away and keep."""
    ids = list(scan_ids)
    rows = {table: _count(con, table, ids) for table in ("scans", *RUN_TABLES)}
    files = [row[0] for row in con.execute(_FILES, [ids, ids]).fetchall()]
    (snapshots,), = con.execute(_LISTED_IN, [ids]).fetchall()
    return RemovalPlan(ids, rows, files, _count(con, "labels", ids), snapshots)


def removed_scan_table(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Every scan removed from the catalog and not ingested again, newest first: id, how it was
    chosen, who removed it and when, and where it was found."""
    return con.execute(_REMOVED_TABLE).df()


def removed_inputs(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str, str, str | None]]:
    """(scan_id, source_root, source_path, series_uid) of the removed scans that ingest keeps
    out: chosen by name, folder or as a copy (not gone), and not ingested again since."""
    return con.execute(
        "SELECT scan_id, source_root, source_path, series_uid FROM removed_scans r "
        f"WHERE reason <> 'gone' AND {STILL_REMOVED} ORDER BY scan_id").fetchall()


def removed_ids(con: duckdb.DuckDBPyConnection, gone_only: bool = False) -> list[str]:
    """The scans removed from the catalog (and not ingested again since); ``gone_only``: those
    removed because their files were gone, which ingest does not keep out."""
    return [row[0] for row in con.execute(
        f"SELECT scan_id FROM removed_scans r WHERE {STILL_REMOVED} "
        "AND (reason = 'gone' OR NOT ?) ORDER BY scan_id", [gone_only]).fetchall()]


def remove_scans(con: duckdb.DuckDBPyConnection, reasons: Mapping[str, str],
                 job_id: str | None = None, who: str | None = None) -> int:
    """Remove the scans of ``reasons`` (scan id → how it was chosen: gone | named | under | copy) and
    every run's rows of them, in one transaction, each kept as a line of ``removed_scans``;
    returns how many scans left the catalog. Their files are the caller's to delete
    (``plan_removal``), after this commits."""
    ids = list(reasons)
    if not ids:
        return 0
    with transaction(con):
        con.execute(_KEEP, [job_id, who, ids, [reasons[i] for i in ids]])
        for table in RUN_TABLES:
            con.execute(f"DELETE FROM {table} WHERE {_IDS}", [ids])
        (removed,), = con.execute(f"DELETE FROM scans WHERE {_IDS}", [ids]).fetchall()
    return removed
