"""Process settings every job shares."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_freed_series_arrays_are_reused_without_new_page_faults():
    # ten 50 MB arrays one after another, as a worker's series: a fresh mapping faults every
    # page in again (numpy asks for 2 MB pages, SimpleITK gets 4 KiB ones); reused heap memory
    # faults only the first time
    probe = (
        "import resource, sys\n"
        "import numpy as np\n"
        "from jobs.runtime import reuse_freed_memory\n"
        "if sys.argv[1] == 'reuse':\n"
        "    reuse_freed_memory()\n"
        "np.ones(25_000_000, np.int16).sum()\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
        "for _ in range(10):\n"
        "    np.ones(25_000_000, np.int16).sum()\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)\n"
    )
    faults = {}
    for mode in ("plain", "reuse"):
        done = subprocess.run([sys.executable, "-c", probe, mode], cwd=ROOT, capture_output=True,
                              text=True, env={"PYTHONPATH": str(ROOT)}, timeout=60, check=True)
        faults[mode] = int(done.stdout)
    assert faults["plain"] >= 10 * 24  # 50 MB: at least 24 pages of 2 MiB, every time
    assert faults["reuse"] * 5 < faults["plain"]


def _job_rows(catalog: Path) -> list[tuple]:
    import duckdb

    with duckdb.connect(str(catalog), read_only=True) as con:
        return con.execute("SELECT job, status, pid, counts_json FROM job_runs").fetchall()


def test_a_jobs_start_recorded_aside_while_it_imports_names_this_process(tmp_path):
    """With ``overlap`` the catalog is created and the start recorded in a forked child while
    this process runs ``overlap``; the row names this process, and the job ends as usual."""
    import os

    from data_catalog.settings import CatalogSettings
    from jobs.runtime import fork_is_safe, job_record

    settings = CatalogSettings(tmp_path / "c.duckdb", tmp_path / "store")
    ran: list[int] = []
    forks = fork_is_safe()  # not where an earlier test left a thread (a progress bar's monitor)
    with job_record(settings, "ingest", {"a": 1}, lambda con: os.getpid(),
                    overlap=lambda: ran.append(os.getpid())) as record:  # fmt: skip
        record.counts["n"] = 3
    assert ran == [os.getpid()]
    assert (record.started != os.getpid()) == forks  # on_start ran in the child
    assert _job_rows(settings.catalog_path) == [("ingest", "done", os.getpid(), '{"n": 3}')]


def test_an_overlap_that_fails_ends_the_recorded_job_as_failed(tmp_path):
    from data_catalog.settings import CatalogSettings
    from jobs.runtime import fork_is_safe, job_record

    def broken_import() -> None:
        raise ImportError("a reader is missing")

    settings = CatalogSettings(tmp_path / "c.duckdb", tmp_path / "store")
    forks = fork_is_safe()
    with pytest.raises(ImportError, match="a reader is missing"):
        with job_record(settings, "ingest", {}, overlap=broken_import):
            pytest.fail("the body must not run")
    if forks:  # the child recorded the start meanwhile: the job ends failed, not running
        assert [row[:2] for row in _job_rows(settings.catalog_path)] == [("ingest", "failed")]
    else:  # the overlap runs first: nothing was recorded
        assert not settings.catalog_path.exists()


def test_a_catalog_that_cannot_be_created_aside_raises_its_error_here(tmp_path):
    import duckdb

    from data_catalog.scans import CATALOG_ERRORS
    from data_catalog.settings import CatalogSettings
    from jobs.runtime import job_record

    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the catalog folder should be")
    settings = CatalogSettings(blocker / "c.duckdb", tmp_path / "store")
    ran: list[bool] = []
    with pytest.raises(CATALOG_ERRORS) as raised:
        with job_record(settings, "ingest", {}, overlap=lambda: ran.append(True)):
            pytest.fail("the body must not run")
    assert ran == [True]
    assert isinstance(raised.value, OSError | duckdb.Error)
    assert "not-a-folder" in str(raised.value)


def test_a_killed_writers_part_file_is_removed_and_a_live_ones_kept(tmp_path):
    import numpy as np

    from ctae_core.io.volume_store import parts_in, save_volume
    from jobs.runtime import remove_dead_writers_parts

    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(done.stdout)  # ended: its pid names no process now
    save_volume(np.zeros((2, 2, 2), dtype=np.int16), tmp_path / "kept.npy")
    dead = tmp_path / f".a1b2.npy.{dead_pid}.tmp"
    live = tmp_path / f".c3d4.npy.{os.getpid()}.tmp"
    for part in (dead, live):
        part.write_bytes(b"\x93NUMPY")
    assert parts_in(tmp_path) == {dead: dead_pid, live: os.getpid()}
    assert remove_dead_writers_parts(tmp_path) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, "kept.npy"])
