"""`ctae ingest` and `ctae train` are parsed without typer's pydantic layer, exactly as typer
parses them; help and usage errors still come from typer."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from jobs.cli import load_command
from jobs.launch import FAST_COMMANDS, command_function, fast_arguments
from tests.dicom_factory import write_phantom

ROOT = Path(__file__).resolve().parents[2]
COMMAND_LINES = {
    "ingest": [["in1", "in2", "--catalog", "c.duckdb", "--spacing=2.5", "--workers", "3",
                "--no-progress", "--redact-paths", "--input-timeout", "30"], ["in"]],
    "train": [["--run", "r1", "--preset", "small", "--epochs", "3", "--lr", "0.002",
               "--threads", "2", "--resume", "--encoder-weights", "w.pth"], ["--run-name", "r"]],
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(FAST_COMMANDS))
def test_fast_parse_gives_typers_values_for_every_option(name):
    command = load_command(name)
    for argv in COMMAND_LINES[name]:
        expected = command.make_context(name, list(argv)).params
        assert set(expected) == {param.name for param in command.params}
        assert fast_arguments(command_function(name), argv) == expected


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "jobs", *args], cwd=ROOT, capture_output=True,
                          text=True, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
                          timeout=120)  # fmt: skip


def test_ingest_runs_without_pydantic_and_typer_still_answers_help_and_bad_values(tmp_path):
    write_phantom(tmp_path / "in" / "ct")
    probe = (
        "import sys\n"
        "from jobs.launch import main\n"
        "try:\n"
        f"    main(['ingest', {str(tmp_path / 'in')!r}, '--catalog', "
        f"{str(tmp_path / 'c.duckdb')!r}, '--no-progress'])\n"
        "except SystemExit as done:\n"
        "    print('exit', done.code)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pydantic', 'requests')))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True,
                          text=True, env={"PYTHONPATH": str(ROOT)}, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "ingested 1, skipped 0 unchanged, failed 0" in done.stdout
    assert done.stdout.splitlines()[-2:] == ["exit 0", "[]"]

    assert "--redact-paths" in _run("ingest", "--help").stdout
    typo = _run("ingest", str(tmp_path / "in"), "--spacing", "x")
    assert typo.returncode == 2 and "Invalid value for '--spacing'" in typo.stderr
    refused = _run("ingest", str(tmp_path / "in"), "--spacing", "-1")
    assert refused.returncode == 2 and "--spacing must be positive, not -1.0" in refused.stderr
    not_a_number = _run("ingest", str(tmp_path / "in"), "--spacing", "nan")  # until stop 55: every
    assert not_a_number.returncode == 2  # scan refused as a damaged header ("export it again")
    assert "--spacing must be positive, not nan" in not_a_number.stderr
    out_of_range = _run("train", "--run", "r", "--threads", "0")
    assert out_of_range.returncode == 2 and "'--threads'" in out_of_range.stderr


def test_the_program_ends_with_the_jobs_code_its_output_and_atexit_handlers(tmp_path):
    """``ctae ingest`` as a program leaves without the interpreter's teardown: the exit code,
    the printed summary and the atexit handlers (logging's flush among them) are kept."""
    write_phantom(tmp_path / "in" / "ct")
    (tmp_path / "empty").mkdir()

    def program(source: Path) -> subprocess.CompletedProcess:
        probe = (
            "import atexit, os, sys\n"
            "print('pid', os.getpid())\n"
            "atexit.register(lambda: print('atexit handler ran'))\n"
            f"sys.argv = ['ctae', 'ingest', {str(source)!r}, '--catalog', "
            f"{str(tmp_path / 'c.duckdb')!r}, '--no-progress']\n"
            "from jobs.launch import main\n"
            "main()\n"
            "print('not reached')\n"
        )
        return subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True,
                              text=True, env={"PYTHONPATH": str(ROOT)}, timeout=120)  # fmt: skip

    done = program(tmp_path / "in")
    assert done.returncode == 0, done.stderr
    pid_line, summary = done.stdout.splitlines()[:2]
    assert summary.startswith("found 1 input(s): ingested 1, skipped 0")
    assert done.stdout.splitlines()[-1] == "atexit handler ran"
    # its start was recorded by a forked child (a fresh program has no other thread), in this
    # process's name, and the job ended as done
    with duckdb.connect(str(tmp_path / "c.duckdb"), read_only=True) as con:
        rows = con.execute("SELECT job, status, pid FROM job_runs").fetchall()
    assert rows == [("ingest", "done", int(pid_line.split()[1]))]
    assert "not reached" not in done.stdout
    empty = program(tmp_path / "empty")
    assert empty.returncode == 1
    assert "ctae ingest: nothing could be ingested" in empty.stderr
    assert empty.stdout.splitlines()[-1] == "atexit handler ran"


@pytest.mark.parametrize("command", [
    ["train", "--run", "r"],  # parsed here, without typer
    ["score", "--run", "r"],  # through typer; the job's own handler passes the error on
    ["export", "--run", "r", "--out", "scans.csv"],
    ["dashboard", "--no-browser", "--port", "8597"],  # said before a server starts
])  # fmt: skip
def test_a_catalog_path_that_holds_no_catalog_ends_any_command_with_what_to_do(tmp_path, command):
    catalog = tmp_path / "catalog.duckdb"
    catalog.write_text("not a database\n")
    done = subprocess.run([sys.executable, "-m", "jobs", *command, "--catalog", str(catalog)],
                          cwd=tmp_path, capture_output=True, text=True,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, timeout=120)  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    said = done.stderr.strip().splitlines()[-1]
    assert said.startswith(f"ctae {command[0]}: {catalog}: DuckDB ")
    assert "not a valid DuckDB database file" in said and "point --catalog" in said
    assert catalog.read_text() == "not a database\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["catalog.duckdb"]


def test_a_catalog_folder_or_a_store_file_is_refused_before_any_work(tmp_path):
    (tmp_path / "store").write_text("a file where the store should be\n")
    for flags, said in ((["--catalog", str(tmp_path)], f"{tmp_path} is a folder; pass the catalog file in it"),
                        (["--catalog", str(tmp_path / "c.duckdb"), "--store", str(tmp_path / "store")],
                         f"{tmp_path / 'store'} is a file; pass a folder")):
        for command in (["ingest", str(tmp_path / "in")], ["score", "--run", "r"]):
            done = _run(*command, *flags)
            assert done.returncode == 2 and said in " ".join(done.stderr.split()), done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store"]


@pytest.mark.parametrize("command", [
    ["train", "--run", "r"], ["score", "--run", "r"], ["embed", "--run", "r"],
    ["export", "--run", "r", "--out", "scans.csv"], ["evaluate", "--run", "r", "--truth", "truth.csv"],
    ["status"],
])  # fmt: skip
def test_a_job_that_reads_the_catalog_refuses_a_path_with_none_and_makes_none(tmp_path, command):
    catalog = tmp_path / "catlog.duckdb"  # a typo: before, an empty catalog was made there
    done = subprocess.run([sys.executable, "-m", "jobs", *command, "--catalog", str(catalog)],
                          cwd=tmp_path, capture_output=True, text=True,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, timeout=120)  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        f"ctae {command[0]}: {catalog}: no catalog here yet; run `ctae ingest SOURCE --catalog "
        f"{catalog}` first, or check the path")
    assert list(tmp_path.iterdir()) == []
