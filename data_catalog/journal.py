"""The review journal: an append-only SQLite file beside the catalog that takes every review write.

DuckDB lets one process hold the catalog at a time, and a job may hold it for seconds. A label
must be durable the moment the reviewer sees it acknowledged, so review writes (labels, review
sessions, adjudications, the audit log) go to this journal instead: SQLite in WAL mode with
``synchronous=FULL`` commits in a few milliseconds, fsynced, while any number of processes read
it. Every read-write open of the catalog copies new journal rows into the catalog
(:func:`data_catalog.absorb.absorb_journal`); rows stay in the journal, marked absorbed.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BUSY_TIMEOUT_MS = 10_000

_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS labels (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        label_id TEXT NOT NULL UNIQUE,
        scan_id TEXT NOT NULL,
        reviewer TEXT NOT NULL,
        verdict TEXT NOT NULL,
        causes TEXT NOT NULL,               -- JSON list of cause tags
        note TEXT,
        run_id TEXT,
        session_id TEXT NOT NULL,
        created_at TEXT NOT NULL,           -- ISO 8601, UTC
        absorbed INTEGER NOT NULL DEFAULT 0
    )""",
    "CREATE INDEX IF NOT EXISTS labels_session ON labels (session_id, reviewer, scan_id)",
    "CREATE INDEX IF NOT EXISTS labels_pending ON labels (seq) WHERE absorbed = 0",
    """CREATE TABLE IF NOT EXISTS review_sessions (
        session_id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        created_by TEXT NOT NULL,
        created_at TEXT NOT NULL,
        run_id TEXT,
        source TEXT NOT NULL,
        reads_per_scan INTEGER NOT NULL,
        show_others INTEGER NOT NULL,
        show_model INTEGER NOT NULL,
        status TEXT NOT NULL,
        closed_at TEXT,
        absorbed INTEGER NOT NULL DEFAULT 0
    )""",
    """CREATE TABLE IF NOT EXISTS session_assignments (
        session_id TEXT NOT NULL,
        reviewer TEXT NOT NULL,
        scan_id TEXT NOT NULL,
        position INTEGER NOT NULL,
        absorbed INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (session_id, reviewer, scan_id)
    )""",
    """CREATE TABLE IF NOT EXISTS adjudications (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        adjudication_id TEXT NOT NULL UNIQUE,
        session_id TEXT NOT NULL,
        scan_id TEXT NOT NULL,
        verdict TEXT NOT NULL,
        causes TEXT NOT NULL,
        note TEXT,
        adjudicator TEXT NOT NULL,
        created_at TEXT NOT NULL,
        absorbed INTEGER NOT NULL DEFAULT 0
    )""",
    """CREATE TABLE IF NOT EXISTS audit_log (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        event_id TEXT NOT NULL UNIQUE,
        who TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT,
        before_json TEXT,
        after_json TEXT,
        created_at TEXT NOT NULL,
        absorbed INTEGER NOT NULL DEFAULT 0
    )""",
    # sign-ins, wrong passwords, lock-outs and sign-outs (data_catalog.sign_ins); not absorbed
    """CREATE TABLE IF NOT EXISTS sign_in_events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL,
        client TEXT NOT NULL,
        outcome TEXT NOT NULL,              -- ok | wrong | locked | signed_out
        created_at TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS sign_in_by_name ON sign_in_events (name, outcome, created_at)",
    "CREATE INDEX IF NOT EXISTS sign_in_by_client ON sign_in_events (client, outcome, created_at)",
]
_READY: set[str] = set()


def journal_path(catalog: Path | str) -> Path:
    """The journal file of a catalog: ``catalog.duckdb`` → ``catalog.review.sqlite``."""
    return Path(catalog).with_suffix(".review.sqlite")


def now_iso() -> str:
    """The current UTC time as the journal writes it (microseconds, sortable)."""
    return datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="microseconds")


def to_json(value: Any) -> str:
    """A value as the journal's JSON text (before/after of the audit log, cause lists)."""
    return json.dumps(value, sort_keys=True, default=str)


@contextmanager
def open_journal(catalog: Path | str, *, write: bool = True) -> Iterator[sqlite3.Connection]:
    """The catalog's journal for one unit of work: a transaction that commits (fsynced) on exit.

    ``write=False`` takes no write lock (readers never wait for writers in WAL mode).

    Creates the journal (and its tables) on first use. Raises ``sqlite3.OperationalError`` only
    if another writer held it for longer than ten seconds, which short transactions never do.
    """
    path = journal_path(catalog)
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    try:
        con.row_factory = sqlite3.Row
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=FULL")  # durable at commit: the acknowledgement is true
        con.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        key = str(path.resolve())
        if key not in _READY:
            for statement in _SCHEMA:
                con.execute(statement)
            _READY.add(key)
        con.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        try:
            yield con
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")
    finally:
        con.close()


def journal_exists(catalog: Path | str) -> bool:
    """True when the catalog has a journal (nothing to absorb or merge otherwise)."""
    return journal_path(catalog).is_file()


def journal_version(catalog: Path | str) -> tuple[int, int]:
    """Modification times (ns) of the journal and its WAL: they change with every review write."""
    path = journal_path(catalog)
    stamps = []
    for part in (path, Path(f"{path}-wal")):
        try:
            stamps.append(part.stat().st_mtime_ns)
        except FileNotFoundError:
            stamps.append(0)
    return stamps[0], stamps[1]
