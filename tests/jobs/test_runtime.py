"""Process settings every job shares."""

from __future__ import annotations

import os
import subprocess
import sys
import time
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


HOLD_A_SCORING = """
import sys
from data_catalog.settings import CatalogSettings
from jobs.runtime import job_run

settings = CatalogSettings.resolve(sys.argv[1], sys.argv[2], env={})
with job_run(settings, "score", {"run_id": "r"}):  # the job's own record, as `ctae score` makes it
    print("started", flush=True)
    sys.stdin.read()  # until the test closes the pipe, or kills this process
"""


def test_a_second_job_on_a_run_in_use_is_refused_until_the_first_ends(settings):
    from typer.testing import CliRunner

    from data_catalog import connect
    from data_catalog.runs import create_run, update_run
    from jobs.cli import app

    runner = CliRunner()
    base = ["--catalog", str(settings.catalog_path), "--no-progress"]
    checkpoint = settings.store_dir / "runs" / "r" / "checkpoint.pt"
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_bytes(b"")  # what `ctae score` checks before it starts
    with connect(settings.catalog_path) as con:
        create_run(con, "r", "tiny_dae", "{}")
        update_run(con, "r", status="trained", checkpoint_path=str(checkpoint))
    holder = subprocess.Popen([sys.executable, "-c", HOLD_A_SCORING, str(settings.catalog_path),
                               str(settings.store_dir)], cwd=ROOT, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "started"
        for command in (["train", "--run", "r", "--resume"], ["score", "--run", "r"]):
            result = runner.invoke(app, [*command, *base])
            assert result.exit_code == 2, result.output  # README: busy
            said = " ".join(result.output.split())
            assert said.startswith(f"ctae {command[0]}: run 'r' is in use: `ctae score` has been "
                                   f"running on it in process {holder.pid} since ")
            assert "wait for it to end (or stop it), then run this again" in said
        other = runner.invoke(app, ["embed", "--run", "r2", *base])  # another run is free
        assert "in use" not in other.output and "run 'r2' is not in" in other.output
        holder.kill()  # killed: its row stays `running`, and until reaped it is a zombie
        stat = Path(f"/proc/{holder.pid}/stat")
        deadline = time.monotonic() + 10
        while stat.read_bytes().rsplit(b")", 1)[1].split()[0] != b"Z" and time.monotonic() < deadline:
            time.sleep(0.05)
        after = runner.invoke(app, ["train", "--run", "r", "--resume", *base])  # the dead holder
        assert "in use" not in after.output and "only 0 scan(s)" in after.output  # no longer counts
    finally:
        holder.kill()
        holder.wait()
    scorings = [row[:2] for row in _job_rows(settings.catalog_path) if row[0] == "score"]
    assert scorings == [("score", "interrupted")]  # and no row for the refused starts


def test_a_row_this_process_left_running_does_not_lock_it_out_of_its_run(settings):
    # a job whose end could not be recorded (a full catalog disk) leaves its row `running`; the
    # same process (a notebook) may go on with the run
    from typer.testing import CliRunner

    from data_catalog import connect
    from data_catalog.job_runs import start_job_run
    from jobs.cli import app
    from jobs.runtime import this_process

    with connect(settings.catalog_path) as con:
        start_job_run(con, "score", {"run_id": "r"}, this_process())
    result = CliRunner().invoke(app, ["train", "--run", "r", "--catalog", str(settings.catalog_path),
                                      "--no-progress"])
    assert "in use" not in result.output and "only 0 scan(s)" in result.output


def test_pick_device_names_what_it_runs_on_and_what_this_machine_lacks():
    # `ctae score --device tpu` printed torch's list of device types until stop 56
    from jobs.job_errors import JobError
    from jobs.runtime import pick_device

    assert pick_device("cpu") == "cpu" and pick_device("auto") in ("cpu", "cuda")
    for device in ("gpu", "tpu", "mps", "cuda:x", "CPU"):
        with pytest.raises(JobError, match=f"--device '{device}' is not one ctae runs on"):
            pick_device(device)
    with pytest.raises(JobError, match="--device cuda:99 was asked for, but this machine has "):
        pick_device("cuda:99")


def test_ctrl_c_in_a_job_records_it_interrupted_and_exits_130(settings, capsys):
    # until stop 56: recorded `failed`, "Aborted!" and exit 1, which the README gives to
    # "nothing could be done yet"
    from jobs.runtime import job_run

    with pytest.raises(SystemExit) as stopped:
        with job_run(settings, "train", {"run": "r"}):
            raise KeyboardInterrupt
    assert stopped.value.code == 130
    assert _job_rows(settings.catalog_path)[-1][:2] == ("train", "interrupted")
    assert ("ctae train: interrupted (Ctrl+C); what it finished is kept: run the same command "
            "again with --resume to go on") in capsys.readouterr().err


def test_a_failed_job_keeps_how_it_failed_for_status_and_the_overview(settings):
    # until stop 59 a failed job_runs row said `failed` and nothing else
    from data_catalog import connect
    from data_catalog.job_runs import job_list
    from jobs.job_errors import JobError
    from jobs.runtime import job_run

    with pytest.raises(JobError):
        with job_run(settings, "score", {"run_id": "r"}):
            raise JobError("run 'r' has no checkpoint: train it first")
    with pytest.raises(MemoryError):
        with job_run(settings, "train", {"run": "r"}):
            raise MemoryError("cannot allocate 3.2 GB")
    with pytest.raises(FileNotFoundError):  # a redacted ingest's message may name a path
        with job_run(settings, "ingest", {"redact_paths": True}):
            raise FileNotFoundError("/data/patient17: source folder does not exist")
    with connect(settings.catalog_path, read_only=True) as con:
        jobs = job_list(con)
    assert [(j["job"], j["status"], j["error"]) for j in jobs] == [
        ("ingest", "failed", None),
        ("train", "failed", "MemoryError: cannot allocate 3.2 GB"),
        ("score", "failed", "run 'r' has no checkpoint: train it first"),
    ]
