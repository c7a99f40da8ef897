"""How far the pipeline got for one run: what each stage left in the catalog."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import duckdb

from data_catalog.connection import dict_rows
from data_catalog.job_runs import job_list
from data_catalog.removal import STILL_REMOVED

_STATUS = """
SELECT
    (SELECT count(*) FROM scans)                                        AS scans,
    (SELECT count(*) FROM ingest_errors)                                AS ingest_errors,
    (SELECT any_value(status) FROM runs WHERE run_id = $run_id)         AS run_status,
    (SELECT count(*) FROM scores WHERE run_id = $run_id)                AS scored,
    (SELECT count(*) FROM scores WHERE run_id = $run_id AND recon_path IS NOT NULL
                                                   AND error_path IS NOT NULL) AS with_volumes,
    (SELECT count(*) FROM scores WHERE run_id = $run_id AND latent IS NOT NULL) AS with_latents,
    (SELECT count(*) FROM scores WHERE run_id = $run_id
                                   AND outlier_score IS NOT NULL)       AS with_outlier_score,
    (SELECT any_value(threshold) FROM runs WHERE run_id = $run_id)      AS threshold,
    (SELECT count(*) FROM embeddings WHERE run_id = $run_id)            AS embedded,
    (SELECT count(*) FROM evaluations WHERE run_id = $run_id)           AS evaluations,
    (SELECT count(*) FROM scans s WHERE NOT EXISTS (
        SELECT 1 FROM scores r WHERE r.run_id = $run_id AND r.scan_id = s.scan_id)) AS unscored
"""


@dataclass(frozen=True)
class PipelineStatus:
    """Counts of what ingest, train, score, embed and evaluate wrote for one run."""

    scans: int
    ingest_errors: int
    run_status: str | None
    scored: int
    with_volumes: int
    with_latents: int
    with_outlier_score: int
    threshold: float | None
    embedded: int
    evaluations: int
    unscored: int

    @property
    def trained(self) -> bool:
        return self.run_status == "trained"

    @property
    def scored_all(self) -> bool:
        """Every scan scored, with its outlier score (a catalog scored before schema v3 lacks
        it — the v3 migration clears the older scale — until `ctae score` runs again), and T
        set."""
        return (self.scans > 0 and self.unscored == 0 and self.threshold is not None
                and self.with_outlier_score == self.scored)


def pipeline_status(con: duckdb.DuckDBPyConnection, run_id: str) -> PipelineStatus:
    """What the catalog holds for ``run_id`` and its scans."""
    row = con.execute(_STATUS, {"run_id": run_id}).fetchone()
    names = [d[0] for d in con.description]
    return PipelineStatus(**dict(zip(names, row, strict=True)))


_CATALOG = f"""
SELECT (SELECT count(*) FROM scans) AS scans,
       (SELECT count(*) FROM ingest_errors) AS ingest_errors,
       (SELECT count(*) FROM removed_scans r WHERE {STILL_REMOVED}) AS removed,
       (SELECT count(*) FROM labels) AS labels,
       (SELECT count(*) FROM exports) AS exports
"""
_ERRORS_BY_REASON = "SELECT reason, count(*) FROM ingest_errors GROUP BY reason ORDER BY 2 DESC, 1"
# the scores counted per run first, then joined to the runs: grouping the joined rows by every
# run column took 0.40 s for two runs of 1M scans, this 0.12 s (the Overview reads it too)
_RUNS = """
WITH counted AS (
    SELECT run_id, count(*) AS scored, count(*) FILTER (WHERE is_outlier) AS flagged,
           count(*) FILTER (WHERE outlier_score IS NOT NULL AND is_outlier IS NULL) AS unflagged
    FROM scores WHERE scan_id IN (SELECT scan_id FROM scans) GROUP BY run_id
)
SELECT r.run_id, r.preset, r.status, r.epochs_done,
       TRY_CAST(json_extract_string(r.config_json, '$.epochs') AS INTEGER) AS epochs,
       r.threshold,
       coalesce(c.scored, 0) AS scored, coalesce(c.flagged, 0) AS flagged,
       coalesce(c.unflagged, 0) AS unflagged,
       (SELECT count(*) FROM embeddings e WHERE e.run_id = r.run_id) AS embedded,
       (SELECT count(*) FROM evaluations v WHERE v.run_id = r.run_id) > 0 AS evaluated,
       strftime(r.created_at, '%Y-%m-%d %H:%M') AS created
FROM runs r LEFT JOIN counted c ON c.run_id = r.run_id
ORDER BY created, r.run_id
"""


def catalog_summary(con: duckdb.DuckDBPyConnection, jobs: int = 5) -> dict[str, object]:
    """What the catalog holds, for `ctae status`: counts of scans, refusals (by reason), removed
    scans, labels and exports; each run, oldest first, with how far it got (scored, flagged,
    embedded, evaluated — counting the scans still in the catalog); and the last ``jobs`` jobs
    that ended, newest first. Rows are dicts of JSON-ready values."""
    summary: dict[str, object] = dict_rows(con, _CATALOG)[0]
    summary["errors_by_reason"] = dict(con.execute(_ERRORS_BY_REASON).fetchall())
    summary["runs"] = dict_rows(con, _RUNS)
    summary["jobs"] = job_list(con, jobs, ended=True)
    return summary


def next_steps(status: dict[str, Any], done: bool = True) -> list[str]:
    """What to run next, in order (``ctae status``, the Overview): ingest, train, then for each
    run what it lacks (a training to resume, scans to score, flags, an embedding), or, where
    ``done``, the dashboard and export once it has all. ``status``: ``catalog_summary``'s dict
    with ``running``, each job recorded as running with its ``job``, ``run_id`` and ``process``
    (``ctae_core.io.processes.process_state``)."""
    if not status["scans"]:
        return ["ingest scans: `ctae ingest SOURCE...`"]
    if not status["runs"]:
        return ["train a run on the scans: `ctae train --run NAME`"]
    # a job on another machine ("not checked") counts as busy too: suggesting to score a run
    # that is being scored elsewhere would start a second writer on it
    busy = {(job["job"], job["run_id"]): job["process"] for job in status["running"]
            if job["process"] != "gone"}
    steps = []
    for run in status["runs"]:
        r = run["run_id"]
        if any(run_id == r for _, run_id in busy):
            jobs = [f"{j} running" + (" on another machine" if busy[j, i] == "not checked" else "")
                    for j, i in sorted(busy) if i == r]
            steps.append(f"run {r}: {', '.join(jobs)}")
        elif run["status"] != "trained":
            steps.append(f"run {r}: its training stopped at epoch {run['epochs_done']} "
                         f"({run['status']}): `ctae train --run {r} --resume` goes on")
        elif run["scored"] < status["scans"]:
            steps.append(f"run {r}: {status['scans'] - run['scored']} of {status['scans']} scans "
                         f"not scored: `ctae score --run {r}`")
        elif run["unflagged"]:
            from data_catalog.filters import why_unflagged  # with pandas: only when it is needed

            steps.append(f"run {r}: {run['unflagged']} scans have no flag: {why_unflagged(r)}")
        elif run["embedded"] < run["scored"]:
            steps.append(f"run {r}: `ctae embed --run {r}` (the feature space's map and clusters)")
        elif done:
            steps.append(f"run {r}: done; review it with `ctae dashboard`, list its scans with "
                         f"`ctae export --run {r} --out FILE`")
    return steps
