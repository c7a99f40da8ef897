"""Copy the review journal into the catalog, and let catalog reads see what is not copied yet.

:func:`absorb_journal` runs on every read-write open of the catalog (a job's, the dashboard's),
so journal rows reach the catalog as soon as anyone holds it; every read-only open shows the
journal's other labels through :func:`merge_pending_rows`. It is idempotent: rows are
inserted by their ids with ``INSERT OR IGNORE`` before being marked absorbed, so a crash between
the two steps copies nothing twice.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from data_catalog.journal import journal_exists, open_journal
from data_catalog.rollback import rollback

if TYPE_CHECKING:
    import pandas as pd  # imported where a journal is read: every job's catalog open is here

logger = logging.getLogger(__name__)

LABEL_COLUMNS = [
    "label_id", "scan_id", "reviewer", "verdict", "causes", "note", "run_id", "session_id",
    "created_at",
]
# journal table → (catalog insert, columns, key column in the journal)
_TABLES = {
    "labels": ("INSERT OR IGNORE INTO labels BY NAME SELECT * FROM pending", LABEL_COLUMNS, "seq"),
    "review_sessions": (
        "INSERT OR REPLACE INTO review_sessions BY NAME SELECT * FROM pending",
        ["session_id", "name", "created_by", "created_at", "run_id", "source", "reads_per_scan",
         "show_others", "show_model", "status", "closed_at"],
        "session_id",
    ),
    "session_assignments": (
        "INSERT OR IGNORE INTO session_assignments BY NAME SELECT * FROM pending",
        ["session_id", "reviewer", "scan_id", "position"],
        "rowid",
    ),
    "adjudications": (
        "INSERT OR IGNORE INTO adjudications BY NAME SELECT * FROM pending",
        ["adjudication_id", "session_id", "scan_id", "verdict", "causes", "note", "adjudicator",
         "created_at"],
        "seq",
    ),
    "audit_log": (
        "INSERT OR IGNORE INTO audit_log BY NAME SELECT * FROM pending",
        ["event_id", "who", "action", "target", "before_json", "after_json", "created_at"],
        "seq",
    ),
}
_TIMES = ("created_at", "closed_at")


def _frame(rows: list, columns: list[str]) -> pd.DataFrame:
    import pandas as pd

    frame = pd.DataFrame([dict(r) for r in rows], columns=["_key", *columns])
    if "causes" in frame:
        frame["causes"] = frame["causes"].map(json.loads)
    for column in _TIMES:
        if column in frame:
            frame[column] = pd.to_datetime(frame[column])
    for column in ("show_others", "show_model"):
        if column in frame:
            frame[column] = frame[column].astype(bool)
    return frame


def absorb_journal(con: duckdb.DuckDBPyConnection, catalog: Path | str) -> int:
    """Copy every journal row not yet in the catalog into it; returns how many rows were copied."""
    if not journal_exists(catalog):
        return 0
    copied = 0
    with open_journal(catalog, write=False) as j:
        pending = {
            table: _frame(
                j.execute(
                    f"SELECT {key} AS _key, {', '.join(cols)} FROM {table} WHERE absorbed = 0"
                ).fetchall(),
                cols,
            )
            for table, (_, cols, key) in _TABLES.items()
        }
    if not any(len(f) for f in pending.values()):
        return 0
    con.execute("BEGIN TRANSACTION")
    try:
        for table, (insert, cols, _) in _TABLES.items():
            frame = pending[table]
            if len(frame):
                con.register("pending", frame[cols])
                con.execute(insert)
                con.unregister("pending")
                copied += len(frame)
        con.execute("COMMIT")
    except BaseException:
        rollback(con)
        raise
    with open_journal(catalog) as j:
        for table, (_, _, key) in _TABLES.items():
            keys = pending[table]["_key"].tolist()
            j.executemany(
                f"UPDATE {table} SET absorbed = 1 WHERE {key} = ?", [(k,) for k in keys]
            )
    logger.info("absorbed %d review journal rows into %s", copied, catalog)
    return copied


def has_pending(catalog: Path | str) -> bool:
    """True when the journal holds rows the catalog has not absorbed yet (a few indexed reads)."""
    if not journal_exists(catalog):
        return False
    with open_journal(catalog, write=False) as j:
        return any(
            j.execute(f"SELECT 1 FROM {table} WHERE absorbed = 0 LIMIT 1").fetchone()
            for table in _TABLES
        )


def pending_review_rows(catalog: Path | str) -> dict[str, pd.DataFrame]:
    """Journal labels and adjudications not yet copied into the catalog, with its columns: only
    the tables that hold some (usually none, and then no pandas is imported: every read-only
    open of the catalog asks, `ctae status` and `ctae remove` among them)."""
    tables = {"labels": ("seq", LABEL_COLUMNS), "adjudications": ("seq", _TABLES["adjudications"][1])}
    if not journal_exists(catalog):
        return {}
    with open_journal(catalog, write=False) as j:
        rows = {table: j.execute(f"SELECT {key} AS _key, {', '.join(cols)} FROM {table} "
                                 "WHERE absorbed = 0").fetchall()
                for table, (key, cols) in tables.items()}
    return {table: _frame(found, tables[table][1]).drop(columns="_key")
            for table, found in rows.items() if found}


def merge_pending_rows(con: duckdb.DuckDBPyConnection, pending: dict[str, pd.DataFrame]) -> None:
    """Make this connection's ``labels`` and ``adjudications`` include the journal's rows not
    yet in the catalog.

    A temporary view of the table's name shadows it for this connection only, so every read
    shows a label the moment it is acknowledged, even while a job holds the catalog.
    """
    if all(frame.empty for frame in pending.values()):
        return
    database = con.execute("SELECT current_database()").fetchall()[0][0]
    for table, frame in pending.items():
        if frame.empty:
            continue
        key = "label_id" if table == "labels" else "adjudication_id"
        con.register(f"pending_{table}", frame)
        con.execute(
            f"""CREATE OR REPLACE TEMP VIEW {table} AS
            SELECT * FROM "{database}".main.{table}
            UNION ALL BY NAME
            SELECT * FROM pending_{table}
            WHERE {key} NOT IN (SELECT {key} FROM "{database}".main.{table})"""
        ).fetchall()
