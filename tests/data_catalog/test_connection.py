"""A held lock makes others wait, then fail with a clear error; a released one lets them in."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest

from data_catalog import CatalogBusyError, CatalogMissingError, connect

HOLD = textwrap.dedent(
    """
    import sys, time, duckdb
    con = duckdb.connect(sys.argv[1])
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
    con.close()
    """
)


def _hold(path, seconds):
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(path), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_busy_catalog_raises_after_waiting(settings):
    proc = _hold(settings.catalog_path, 5)
    try:
        start = time.monotonic()
        with pytest.raises(CatalogBusyError, match="locked"):
            with connect(settings.catalog_path, read_only=True, wait_s=0.5):
                pass
        assert 0.4 < time.monotonic() - start < 3
    finally:
        proc.kill()
        proc.wait()


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

    from data_catalog import connection

    with connect(settings.catalog_path):
        pass  # created and migrated
    connection._MIGRATED.clear()  # as in a new process
    with connect(settings.catalog_path) as con:
        con.register("frame", pd.DataFrame({"value": [1, 2]}))
        assert con.execute("SELECT sum(value) FROM frame").fetchone()[0] == 3
