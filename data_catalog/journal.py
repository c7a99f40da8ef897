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

from data_catalog.errors import CatalogError

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


NOT_WRITABLE = ("unable to open database file", "readonly database", "read-only file system")
"""SQLite's words for a journal it cannot create, or open to write (WAL mode writes beside the
file even to read)."""


class JournalNotWritableError(CatalogError, PermissionError):
    """The review journal beside the catalog cannot be created or written here (a read-only
    share): the review pages, sessions and sign-in cannot work, the other pages can."""


def _not_writable(path: Path, err: Exception) -> JournalNotWritableError:
    return JournalNotWritableError(
        f"{path}: the review journal cannot be opened here ({str(err).strip()}). Reviews, review "
        "sessions and sign-in attempts are kept in it beside the catalog, so they need that "
        "folder writable: serve the dashboard where it is, or copy the catalog with its store "
        "to a disk that is. The pages that only show the catalog work without it")


@contextmanager
def open_journal(catalog: Path | str, *, write: bool = True) -> Iterator[sqlite3.Connection]:
    """The catalog's journal for one unit of work: a transaction that commits (fsynced) on exit.

    ``write=False`` takes no write lock (readers never wait for writers in WAL mode); where the
    journal cannot be opened to write (a read-only share), it reads the file as it is, or an
    empty journal where there is none.

    Creates the journal (and its tables) on first use. Raises ``JournalNotWritableError`` for a
    write the folder does not allow, and ``sqlite3.OperationalError`` only if another writer held
    it for longer than ten seconds, which short transactions never do.
    """
    path = journal_path(catalog)
    try:
        con = _connect(path)
    except JournalNotWritableError:
        if write:
            raise
        con = _read_as_it_is(path)
    try:
        con.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        try:
            yield con
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")
    finally:
        con.close()


def _connect(path: Path) -> sqlite3.Connection:
    """The journal opened to write, in WAL mode, its tables made on first use."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    except (OSError, sqlite3.OperationalError) as err:
        raise _not_writable(path, err) from err
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
    except sqlite3.OperationalError as err:
        con.close()
        if any(words in str(err) for words in NOT_WRITABLE):
            raise _not_writable(path, err) from err
        raise
    return con


def _read_as_it_is(path: Path) -> sqlite3.Connection:
    """A journal nobody can write here: its file read as it is (``immutable``: no lock and no
    WAL file to create, as nothing can change it; rows a writer left in a WAL file it never
    checkpointed are not read), or, where there is none, an empty one in memory."""
    if path.is_file():
        con = sqlite3.connect(f"{path.resolve().as_uri()}?immutable=1", uri=True, isolation_level=None)
    else:
        con = sqlite3.connect(":memory:", isolation_level=None)
        for statement in _SCHEMA:
            con.execute(statement)
    con.row_factory = sqlite3.Row
    return con


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
