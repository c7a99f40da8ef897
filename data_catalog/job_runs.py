"""One row per job invocation: what ran, with which arguments, in which process, and how it
ended (``running``, ``done``, ``failed``, or ``interrupted`` when its process died)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import duckdb

from data_catalog.connection import dict_rows

_START = """
INSERT INTO job_runs (job_id, job, args_json, status, pid, host, process_start)
VALUES (?, ?, ?, 'running', ?, ?, ?)
"""
_FINISH = """
UPDATE job_runs SET status = ?, counts_json = ?, finished_at = current_timestamp
WHERE job_id = ?
"""
_RUNNING = "SELECT job_id, pid, host, process_start FROM job_runs WHERE status = 'running'"
_INTERRUPT = """
UPDATE job_runs SET status = 'interrupted', finished_at = current_timestamp
WHERE status = 'running' AND job_id IN (SELECT unnest(?::VARCHAR[]))
"""
_RECENT = "SELECT * FROM job_runs ORDER BY started_at DESC LIMIT ?"
_RUN_ID = ("coalesce(json_extract_string(args_json, '$.run_id'), "
           "json_extract_string(args_json, '$.run'))")
JOB_COLUMNS = ("job", "status", "run_id", "started", "seconds", "error", "host", "pid")
"""The fields of each of ``job_list``'s jobs."""
_JOB_LIST = f"""
SELECT job, status, {_RUN_ID} AS run_id, strftime(started_at, '%Y-%m-%d %H:%M:%S') AS started,
       round(epoch(finished_at) - epoch(started_at), 1) AS seconds,
       json_extract_string(counts_json, '$.error') AS error, host, pid
FROM job_runs WHERE status <> 'running' OR NOT ? ORDER BY started_at DESC LIMIT ?
"""
_ALL_RUNNING = f"""
SELECT job, pid, host, process_start, strftime(started_at, '%Y-%m-%d %H:%M:%S'), {_RUN_ID}
FROM job_runs WHERE status = 'running' ORDER BY started_at
"""


@dataclass(frozen=True)
class JobProcess:
    """The process a job runs in: id, machine and start tick (tells a reused pid apart)."""

    pid: int | None
    host: str | None
    process_start: str | None


def start_job_run(
    con: duckdb.DuckDBPyConnection,
    job: str,
    args: dict[str, Any],
    process: JobProcess = JobProcess(None, None, None),
) -> str:
    """Record that ``job`` started with ``args`` in ``process``; returns the new job_id."""
    job_id = uuid.uuid4().hex
    con.execute(
        _START,
        [job_id, job, json.dumps(args, default=str, sort_keys=True), *_process_values(process)],
    )
    return job_id


def _process_values(process: JobProcess) -> list[Any]:
    return [process.pid, process.host, process.process_start]


def finish_job_run(
    con: duckdb.DuckDBPyConnection, job_id: str, status: str, counts: dict[str, Any]
) -> None:
    """Record how a job ended (``done`` or ``failed``) with its summary counts."""
    con.execute(_FINISH, [status, json.dumps(counts, default=str, sort_keys=True), job_id])


def running_job_runs(con: duckdb.DuckDBPyConnection) -> dict[str, JobProcess]:
    """The process of every job recorded as still running, by job_id."""
    return {row[0]: JobProcess(*row[1:]) for row in con.execute(_RUNNING).fetchall()}


@dataclass(frozen=True)
class RunningJob:
    """A job recorded as running: which, in which process, since when (its machine's clock), on
    which run (its ``--run``; None for a job of no run)."""

    job: str
    process: JobProcess
    started_at: str
    run_id: str | None = None


def running_jobs(con: duckdb.DuckDBPyConnection) -> list[RunningJob]:
    """Every job recorded as running, oldest first."""
    return [RunningJob(job, JobProcess(pid, host, start), started, run_id)
            for job, pid, host, start, started, run_id in con.execute(_ALL_RUNNING).fetchall()]


def how_to_go_on(job: str, run_id: str | None) -> str:
    """What to run after ``job`` (on ``run_id``) stopped without recording its end: the words of
    ``ctae status`` and the Overview. Every job keeps what it wrote and skips it when run again;
    a training goes on from its last epoch only when asked to resume."""
    if job == "train" and run_id:
        return f"`ctae train --run {run_id} --resume` goes on from its last finished epoch"
    return f"the same `ctae {job}` command again goes on from what it wrote"


def mark_interrupted(con: duckdb.DuckDBPyConnection, job_ids: list[str]) -> int:
    """Mark running jobs whose process is gone as ``interrupted``; returns how many."""
    if not job_ids:
        return 0
    return con.execute(_INTERRUPT, [job_ids]).fetchone()[0]


def job_list(con: duckdb.DuckDBPyConnection, limit: int = 20, ended: bool = False) -> list[dict[str, Any]]:
    """The latest ``limit`` jobs (``ended``: those that ended only), newest first, each a dict:
    job, status, run_id (its ``--run``), started, seconds it took (None while running), error
    (how a failed job failed, where it was recorded), host, pid."""
    return dict_rows(con, _JOB_LIST, [ended, limit])


def recent_job_runs(con: duckdb.DuckDBPyConnection, limit: int = 20):
    """The latest job invocations, newest first, as a DataFrame."""
    return con.execute(_RECENT, [limit]).df()
