"""Kill jobs with SIGKILL at chosen moments and check what they leave: orphan processes,
`running` job_runs rows, duplicated or missing results after a re-run.

Used by ``tests/jobs/test_chaos_jobs.py`` (two kills of ingest) and
``benchmarks/chaos_jobs.py`` (twenty across ingest, train, score and embed).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Kill:
    """What one kill -9 found: whether the job was still running, its descendants then, and
    those alive ``grace_s`` later."""

    job: str
    at_s: float
    killed: bool
    descendants: int
    orphans: list[int]


def ctae(*args: str) -> list[str]:
    """The command line of `ctae ARGS` run from this checkout."""
    return [sys.executable, "-m", "jobs", *args]


def run(*args: str, timeout_s: float = 900) -> subprocess.CompletedProcess:
    """`ctae ARGS` to completion."""
    return subprocess.run(
        ctae(*args), cwd=REPO, env=_env(), capture_output=True, text=True, timeout=timeout_s
    )


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


def kill_at(
    job: str, args: list[str], at_s: float, grace_s: float = 5.0, after_workers: bool = False
) -> Kill:
    """Start `ctae ARGS`, SIGKILL it ``at_s`` seconds later (counted from when it first has
    child processes, with ``after_workers``), and report its descendants alive ``grace_s``
    after the kill."""
    process = subprocess.Popen(
        ctae(*args), cwd=REPO, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    if after_workers:
        _children_of(process)
    deadline = time.monotonic() + at_s
    while time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    # again at the kill: the first child seen can be the fork that records the job's start
    # (jobs.runtime job_record's overlap), gone ~20 ms before the pool's workers start
    family = _children_of(process) if after_workers else descendants(process.pid)
    if process.poll() is not None:
        return Kill(job, at_s, False, 0, [])
    process.send_signal(signal.SIGKILL)
    process.wait()
    time.sleep(grace_s)
    return Kill(job, at_s, True, len(family), [pid for pid in family if alive(pid)])


def _children_of(process: subprocess.Popen) -> list[int]:
    """``process``'s descendants once it has any (empty if it ends first)."""
    while not (family := descendants(process.pid)) and process.poll() is None:
        time.sleep(0.02)
    return family


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children, grandchildren, ...), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def catalog_facts(catalog: Path, run_id: str | None = None) -> dict[str, int]:
    """Counts that a complete, duplicate-free catalog must satisfy."""
    con = duckdb.connect(str(catalog), read_only=True)
    try:
        one = lambda sql, *p: con.execute(sql, list(p)).fetchone()[0]  # noqa: E731
        facts = {
            "scans": one("SELECT count(*) FROM scans"),
            "scan_ids": one("SELECT count(DISTINCT scan_id) FROM scans"),
            "sources": one("SELECT count(DISTINCT source_root || '/' || source_path) FROM scans"),
            "running_jobs": one("SELECT count(*) FROM job_runs WHERE status = 'running'"),
            "interrupted_jobs": one("SELECT count(*) FROM job_runs WHERE status = 'interrupted'"),
        }
        if run_id:
            facts |= {
                "epochs_done": one(
                    "SELECT coalesce(max(epochs_done), 0) FROM runs WHERE run_id = ?", run_id
                ),
                "history_rows": one("SELECT count(*) FROM train_history WHERE run_id = ?", run_id),
                "scores": one("SELECT count(*) FROM scores WHERE run_id = ?", run_id),
                "scored_scans": one(
                    "SELECT count(DISTINCT scan_id) FROM scores WHERE run_id = ?", run_id
                ),
                "embeddings": one("SELECT count(*) FROM embeddings WHERE run_id = ?", run_id),
            }
    finally:
        con.close()
    return facts
