"""A held lock makes others wait, then fail with a clear error; a released one lets them in. A
path that holds no catalog this ctae can use is refused at once, unchanged, with what to do."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import duckdb
import pytest

from data_catalog import (
    SCHEMA_VERSION,
    CatalogBusyError,
    CatalogMissingError,
    CatalogUnreadableError,
    connect,
    connection,
    transaction,
)
from data_catalog.schema import current_version, table_names

HOLD = textwrap.dedent(
    """
    import sys, time, duckdb
    con = duckdb.connect(sys.argv[1], read_only=sys.argv[3:] == ["read_only"])
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
    con.close()
    """
)


def _hold(path, seconds, *mode):
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(path), str(seconds), *mode],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_busy_catalog_raises_after_waiting(settings):
    proc = _hold(settings.catalog_path, 5)
    try:
        start = time.monotonic()
        with pytest.raises(CatalogBusyError, match="locked") as busy:
            with connect(settings.catalog_path, read_only=True, wait_s=0.5):
                pass
        assert 0.4 < time.monotonic() - start < 3
        assert f"locked for 0 s by process {proc.pid} (`{sys.executable} -c " in str(busy.value)
    finally:
        proc.kill()
        proc.wait()


def test_a_program_that_keeps_the_catalog_open_read_only_blocks_no_reader(settings):
    with connect(settings.catalog_path) as con:
        con.execute("INSERT INTO labels (label_id, scan_id, reviewer, verdict) VALUES ('l1', 's1', 'ann', 'inlier')")
    connection._MIGRATED.clear()  # as in a new process: its first open once took the write lock
    proc = _hold(settings.catalog_path, 10, "read_only")  # the DuckDB CLI with -readonly, say
    try:
        start = time.monotonic()
        with connect(settings.catalog_path, read_only=True, wait_s=5) as con:
            assert con.execute("SELECT count(*) FROM labels").fetchone()[0] == 1
        assert time.monotonic() - start < 2  # read at once, not after waiting
        with pytest.raises(CatalogBusyError) as busy:  # a writer must wait for it to close
            with connect(settings.catalog_path, wait_s=0.3):
                pass
        assert f"by process {proc.pid} (" in str(busy.value) and "-readonly" in str(busy.value)
    finally:
        proc.kill()
        proc.wait()


def test_an_older_catalog_opened_read_only_is_migrated_first(settings):
    with connect(settings.catalog_path) as con:
        con.execute("DELETE FROM schema_version WHERE version > 20")  # as v20 left it
    connection._MIGRATED.clear()
    with duckdb.connect(str(settings.catalog_path), read_only=True) as con:
        assert current_version(con) == 20
    with connect(settings.catalog_path, read_only=True) as con:
        assert current_version(con) == SCHEMA_VERSION


def test_writer_waits_for_a_short_lock_and_then_writes(settings):
    proc = _hold(settings.catalog_path, 1.0)
    try:
        with connect(settings.catalog_path, wait_s=30) as con:
            con.execute("INSERT INTO labels (label_id, scan_id, reviewer, verdict) VALUES ('l1', 's1', 'ann', 'inlier')")
        with connect(settings.catalog_path, read_only=True) as con:
            assert con.execute("SELECT count(*) FROM labels").fetchone()[0] == 1
    finally:
        proc.wait()


def test_reading_a_missing_catalog_says_what_to_run(tmp_path):
    with pytest.raises(CatalogMissingError, match="ctae ingest"):
        with connect(tmp_path / "none.duckdb", read_only=True):
            pass


def test_a_processs_first_open_of_a_current_catalog_leaves_nothing_unfinished(settings):
    # the first open in a process reads the schema version; a result left half-read made the
    # next call on the connection that is not a query (register) refuse
    import pandas as pd

    with connect(settings.catalog_path):
        pass  # created and migrated
    connection._MIGRATED.clear()  # as in a new process
    with connect(settings.catalog_path) as con:
        con.register("frame", pd.DataFrame({"value": [1, 2]}))
        assert con.execute("SELECT sum(value) FROM frame").fetchone()[0] == 3


def _refused(path, read_only=False):
    """The CatalogUnreadableError that opening ``path`` raises (one second of patience: a
    refusal taken for a lock would end as CatalogBusyError instead)."""
    with pytest.raises(CatalogUnreadableError) as refused:
        with connect(path, read_only=read_only, wait_s=1.0):
            pass
    return str(refused.value)


@pytest.mark.parametrize("read_only", [False, True])
@pytest.mark.parametrize(("name", "said"), [
    ("catalog.duckdb", "not a valid DuckDB database file"),  # text where the catalog should be
    ("scans.csv", "not a ctae catalog"),  # DuckDB opens a CSV file as a database of views
])
def test_a_file_that_is_no_catalog_is_refused_unchanged_with_what_to_do(tmp_path, read_only, name, said):
    path = tmp_path / name
    path.write_text("series_uid,path\n1.2.3,/data/a\n")
    message = _refused(path, read_only)
    assert str(path) in message and said in message
    assert "--catalog" in message and "not changed" in message
    assert path.read_text() == "series_uid,path\n1.2.3,/data/a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # no .wal beside it


def test_a_damaged_catalog_is_refused_not_waited_for_as_if_locked(settings):
    with connect(settings.catalog_path):
        pass
    data = bytearray(settings.catalog_path.read_bytes())
    data[20] ^= 0xFF  # inside the main header: its checksum no longer matches
    settings.catalog_path.write_bytes(bytes(data))
    connection._MIGRATED.clear()  # as in a new process
    # DuckDB says "... checksum ... in block at location 0": "block" once read as a lock
    message = _refused(settings.catalog_path)
    assert "checksum" in message and str(settings.catalog_path) in message
    assert settings.catalog_path.read_bytes() == bytes(data)


def test_another_programs_duckdb_database_gets_no_ctae_tables(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE orders (id INTEGER)")
        con.execute("CREATE VIEW recent AS SELECT * FROM orders")
    message = _refused(path)
    assert "not a ctae catalog" in message and "orders, recent" in message
    with duckdb.connect(str(path), read_only=True) as con:
        assert table_names(con) == ["orders", "recent"]


def test_a_newer_ctaes_catalog_is_refused_unchanged(settings):
    with connect(settings.catalog_path) as con:
        con.execute("INSERT INTO schema_version (version) VALUES (?)", [SCHEMA_VERSION + 1])
    connection._MIGRATED.clear()
    message = _refused(settings.catalog_path, read_only=True)
    assert f"schema v{SCHEMA_VERSION + 1}" in message and "upgrade ctae" in message
    with duckdb.connect(str(settings.catalog_path), read_only=True) as con:
        assert current_version(con) == SCHEMA_VERSION + 1


def test_an_empty_duckdb_file_becomes_a_catalog(tmp_path):
    path = tmp_path / "new.duckdb"
    duckdb.connect(str(path)).close()
    with connect(path) as con:
        assert current_version(con) == SCHEMA_VERSION
        assert {"scans", "runs", "scores", "labels"} <= set(table_names(con))


def test_a_transaction_that_duckdb_ended_raises_its_own_error_not_the_rollbacks(settings):
    # a write that fails on a full disk makes DuckDB end the transaction itself; its ROLLBACK
    # then raised "no transaction is active", which hid "No space left on device"
    with connect(settings.catalog_path) as con:
        with pytest.raises(ValueError, match="the write that failed"):
            with transaction(con):
                con.execute("INSERT INTO labels (label_id, scan_id, reviewer, verdict) VALUES ('l1', 's1', 'ann', 'inlier')")
                con.execute("COMMIT")  # the transaction is over, as DuckDB's own abort leaves it
                raise ValueError("the write that failed")
        with pytest.raises(duckdb.TransactionException, match="no transaction is active"):
            con.execute("ROLLBACK")  # what transaction() no longer lets through
        with pytest.raises(ZeroDivisionError):
            with transaction(con):
                con.execute("INSERT INTO labels (label_id, scan_id, reviewer, verdict) VALUES ('l2', 's1', 'bo', 'inlier')")
                raise ZeroDivisionError  # a live transaction is still rolled back
        assert con.execute("SELECT label_id FROM labels").fetchall() == [("l1",)]


def test_a_lock_held_from_another_machine_is_not_pinned_on_a_local_process():
    # on a shared disk DuckDB names the holder's pid on its own machine: here that pid may be
    # another program, which the busy error must not name as the holder
    import os

    err = duckdb.IOException(f'Could not set lock on file "c.duckdb": Conflicting lock is held in '
                             f'/opt/other/duckdb (PID {os.getpid()}).')
    assert connection._lock_holder(err) == (
        f"process {os.getpid()} (/opt/other/duckdb; on another machine, if none runs here)")
    err = duckdb.IOException(f"Conflicting lock is held in {sys.executable} (PID {os.getpid()}).")
    here = connection._lock_holder(err)  # this process: its command line, as it was started
    with open("/proc/self/cmdline", "rb") as handle:
        started = handle.read().rstrip(b"\0").replace(b"\0", b" ").decode()
    assert here == f"process {os.getpid()} (`{started[:117] + '…' if len(started) > 120 else started}`)"
    assert connection._lock_holder(duckdb.IOException("Could not set lock")) == "another process"
