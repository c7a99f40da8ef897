"""One row per job invocation: what ran, with which arguments, and how it ended."""

from __future__ import annotations

import json
import uuid
from typing import Any

import duckdb

_START = "INSERT INTO job_runs (job_id, job, args_json, status) VALUES (?, ?, ?, 'running')"
_FINISH = """
UPDATE job_runs SET status = ?, counts_json = ?, finished_at = current_timestamp
WHERE job_id = ?
"""
_RECENT = "SELECT * FROM job_runs ORDER BY started_at DESC LIMIT ?"


def start_job_run(con: duckdb.DuckDBPyConnection, job: str, args: dict[str, Any]) -> str:
    """Record that ``job`` started with ``args``; returns the new job_id."""
    job_id = uuid.uuid4().hex
    con.execute(_START, [job_id, job, json.dumps(args, default=str, sort_keys=True)])
    return job_id


def finish_job_run(
    con: duckdb.DuckDBPyConnection, job_id: str, status: str, counts: dict[str, Any]
) -> None:
    """Record how a job ended (``done`` or ``failed``) with its summary counts."""
    con.execute(_FINISH, [status, json.dumps(counts, default=str, sort_keys=True), job_id])


def recent_job_runs(con: duckdb.DuckDBPyConnection, limit: int = 20):
    """The latest job invocations, newest first, as a DataFrame."""
    return con.execute(_RECENT, [limit]).df()
