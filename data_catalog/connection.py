"""Short-lived DuckDB connections that wait politely for a busy catalog.

DuckDB lets one process hold the file read-write at a time and, while it does, nobody else can
open it at all; processes that only read share it. So nobody keeps a connection open while
idle: open, run a short transaction, close; on a lock conflict, back off and retry (DESIGN.md
"Catalog"). A read-only open asks for the write lock only to bring an older catalog to this
ctae's schema, so a program that keeps the catalog open read-only (the DuckDB CLI with
``-readonly``, a notebook) blocks no ctae command that only reads.
"""

from __future__ import annotations

import logging
import os
import random
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb

from data_catalog.absorb import absorb_journal, merge_pending_rows, pending_review_rows
from data_catalog.errors import CatalogError
from data_catalog.rollback import rollback
from data_catalog.schema import SCHEMA_VERSION, current_version, ensure_schema, table_names

logger = logging.getLogger(__name__)

_MIGRATED: set[str] = set()


class CatalogBusyError(CatalogError, RuntimeError):
    """The catalog stayed locked by another process for longer than we were willing to wait."""


class CatalogMissingError(CatalogError, FileNotFoundError):
    """A read was asked of a catalog file that does not exist yet."""


class CatalogNotWritableError(CatalogError, PermissionError):
    """The catalog (or the folder for a new one) is on a read-only disk, or not this user's to
    write, and the command writes to it (a job records itself, the dashboard its labels; only
    reading commands such as ``ctae status`` go on, and an older catalog needs writing once to
    be brought to this ctae's schema)."""


NOT_WRITABLE = ("Read-only file system", "Permission denied")
"""DuckDB's words (the system's) for a file it may not open to write."""


class CatalogUnreadableError(CatalogError, RuntimeError):
    """The path holds something that is not a catalog this ctae can use: not a DuckDB file, a
    damaged one, one that another DuckDB release wrote, another program's database, or a
    catalog of a newer ctae. The file is left as it was."""


def _is_lock_error(err: Exception) -> bool:
    """DuckDB's refusal while another process holds the file ("Could not set lock on file …:
    Conflicting lock is held"); not any message with "lock" in it (a damaged file's "checksum …
    in block at location 0")."""
    text = str(err)
    return "Could not set lock" in text or "Conflicting lock" in text


def _open(path: Path, read_only: bool, wait_s: float) -> duckdb.DuckDBPyConnection:
    deadline = time.monotonic() + wait_s
    delay_s = 0.02
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.Error as err:
            if not read_only and any(words in str(err) for words in NOT_WRITABLE):
                raise CatalogNotWritableError(
                    f"{path}: cannot be opened to write ({str(err).strip()}); this command "
                    "writes to the catalog (a job records itself, the dashboard its labels; "
                    "`ctae status` only reads): run it where the file and its folder are "
                    "writable, or copy the catalog with its store to a disk that is. The file was "
                    "not changed"
                ) from err
            if not _is_lock_error(err):
                raise CatalogUnreadableError(
                    f"{path}: DuckDB {duckdb.__version__} cannot open this file as a catalog "
                    f"({str(err).strip()}); point --catalog (or $CTAE_CATALOG) at the "
                    "catalog.duckdb a ctae job wrote, or at a path that does not exist yet to "
                    "start a new catalog. The file was not changed"
                ) from err
            if time.monotonic() >= deadline:
                raise CatalogBusyError(
                    f"{path}: the catalog stayed locked for {wait_s:.0f} s by "
                    f"{_lock_holder(err)}. A ctae job or the dashboard holds it only while it "
                    "writes; a program that keeps it open (the DuckDB CLI, a notebook) holds it "
                    "until it closes it — retry when that process ends, or close it (a program "
                    "that only reads can share the catalog: open it read-only, e.g. `duckdb "
                    "-readonly`)"
                ) from err
            time.sleep(delay_s * (0.5 + random.random()))
            delay_s = min(delay_s * 2, 0.5)


def _lock_holder(err: Exception) -> str:
    """The process DuckDB names in its lock refusal ("… is held in PROGRAM (PID N)"), with its
    command line where it runs on this machine; "another process" where it names none."""
    found = re.search(r"held in (.+?) \(PID (\d+)\)", str(err))
    if not found:
        return "another process"
    program, pid = found.groups()
    try:
        same = os.path.realpath(f"/proc/{pid}/exe") == os.path.realpath(program)
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            words = handle.read().rstrip(b"\0").split(b"\0")
    except OSError:
        same = False
    if not same:  # gone since, another user's, or on another machine sharing the disk
        return f"process {pid} ({program}; on another machine, if none runs here)"
    command = " ".join(w.decode(errors="replace") for w in words)
    return f"process {pid} (`{command[:117] + '…' if len(command) > 120 else command}`)"


def dict_rows(con: duckdb.DuckDBPyConnection, sql: str, params: Any = None) -> list[dict[str, Any]]:
    """The rows of ``sql`` as dicts by column name (JSON-ready where the values are)."""
    rows = con.execute(sql, params).fetchall() if params is not None else con.execute(sql).fetchall()
    names = [d[0] for d in con.description]
    return [dict(zip(names, row, strict=True)) for row in rows]


@contextmanager
def read_as_found(path: Path | str, *, wait_s: float = 10.0) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open a catalog file read-only as it is — not migrated, the review journal's new rows not
    merged —: a look at another catalog (``ctae remove`` asking which stored files a catalog
    beside this one reads), which changes nothing of it.

    Raises:
        CatalogBusyError: another process held it for ``wait_s``.
        CatalogUnreadableError: the file is no DuckDB database.
    """
    con = _open(Path(path), True, wait_s)
    try:
        yield con
    finally:
        con.close()


@contextmanager
def connect(
    path: Path | str, *, read_only: bool = False, wait_s: float = 120.0
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the catalog for one short unit of work, migrating the schema on first write-open.

    Every read-write open first copies the review journal's new rows (labels written while
    someone else held the catalog) into the catalog; a read-only open shows them in ``labels``.

    Args:
        path: The catalog file; created (with its folder) on a read-write open.
        read_only: Open for reading only. The file must exist.
        wait_s: How long to keep retrying while another process holds the lock.

    Raises:
        CatalogMissingError: ``read_only`` and the file does not exist.
        CatalogBusyError: the lock was not released within ``wait_s``.
        CatalogUnreadableError: the file is no catalog this ctae can use (``_open``,
            ``_migrate``); nothing in it was changed.
    """
    path = Path(path)
    key = str(path.resolve())
    if read_only:
        if not path.exists():
            raise CatalogMissingError(
                f"{path}: no catalog here yet; run `ctae ingest SOURCE --catalog {path}` first"
            )
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
    if read_only and key not in _MIGRATED:
        con = _first_read_open(path, wait_s)
    else:
        con = _open(path, read_only, wait_s)
    try:
        if not read_only and key not in _MIGRATED:
            _migrate(con, path)
            _MIGRATED.add(key)
        if not read_only:
            _absorb(con, path)
        else:
            merge_pending_rows(con, pending_review_rows(path))
        yield con
    finally:
        con.close()


def _first_read_open(path: Path, wait_s: float) -> duckdb.DuckDBPyConnection:
    """A process's first read-only open of ``path``: read-only where the catalog is at this
    ctae's schema; otherwise a read-write open first, which migrates it, or refuses it naming
    what it is (``_migrate``)."""
    try:
        con = _open(path, True, wait_s)
        if current_version(con) == SCHEMA_VERSION:
            _MIGRATED.add(str(path.resolve()))
            return con
        con.close()
    except CatalogUnreadableError:
        pass  # the read-write open says what the file is (DuckDB opens a CSV file only so)
    with connect(path, read_only=False, wait_s=wait_s):
        pass
    return _open(path, True, wait_s)


def _migrate(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """Bring the catalog to this ctae's schema; refuse, unchanged, another program's database
    (tables but no ``schema_version``: every catalog has had one since v1) and a catalog that a
    newer ctae wrote."""
    version = current_version(con)
    if version > SCHEMA_VERSION:
        raise CatalogUnreadableError(
            f"{path}: a newer ctae wrote this catalog (schema v{version}; this ctae knows up to "
            f"v{SCHEMA_VERSION}); upgrade ctae (git pull, then scripts/setup.sh) to use it")
    if version == 0 and (tables := table_names(con)):
        shown = ", ".join(tables[:5]) + (", …" if len(tables) > 5 else "")
        raise CatalogUnreadableError(
            f"{path}: a DuckDB database that is not a ctae catalog (it holds {shown} and no "
            "schema_version); point --catalog at a ctae catalog, or at a path that does not "
            "exist yet to start one. The file was not changed")
    if version < SCHEMA_VERSION:
        ensure_schema(con)


def _absorb(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    try:
        absorb_journal(con, path)
    except Exception:  # the labels stay in the journal; the next open tries again
        logger.warning("could not copy the review journal into %s yet", path, exc_info=True)


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """BEGIN … COMMIT, rolled back if the body raises, so a killed job leaves no half batch."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
    except BaseException:
        rollback(con)
        raise
    con.execute("COMMIT")
