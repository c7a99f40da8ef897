"""Every read the dashboard and `ctae export` need, named after what it returns.

Labels are append-only; a reviewer's *current* label of a scan is their newest one, and a
scan's *current verdict* is the newest current label of any reviewer. Scans are LEFT-joined to
the run's rows, so scans the run has not scored still appear (with NULL scores).
"""

from __future__ import annotations

from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa

from data_catalog.job_runs import (
    JOB_COLUMNS,
    job_list,
    running_jobs,  # noqa: F401  (read by the dashboard, data.py)
)
from data_catalog.removal import removed_scan_table  # noqa: F401  (read by the dashboard, data.py)
from data_catalog.scans import duplicate_scans  # noqa: F401  (read by the dashboard, data.py)
from data_catalog.scores import read_evaluation_bases
from data_catalog.status import catalog_summary  # noqa: F401  (read by the dashboard, data.py)

_LATEST_PER_REVIEWER = """
latest AS (
    SELECT * FROM labels
    QUALIFY row_number() OVER (
        PARTITION BY scan_id, reviewer ORDER BY created_at DESC, label_id DESC) = 1
)"""
# An admin's final verdict (adjudications, v5) overrides the reads' newest verdict.
_FINAL = """
final AS (
    SELECT scan_id, arg_max(verdict, (created_at, adjudication_id)) AS verdict,
           array_to_string(arg_max(causes, (created_at, adjudication_id)), '; ') AS causes
    FROM adjudications GROUP BY scan_id
)"""
_CURRENT = f"""
WITH {_LATEST_PER_REVIEWER}, {_FINAL},
current AS (
    SELECT scan_id,
           arg_max(verdict, created_at) AS label,
           array_to_string(arg_max(causes, created_at), '; ') AS causes,
           arg_max(reviewer, created_at) AS labelled_by,
           count(*) AS n_reviewers,
           count(DISTINCT verdict) > 1 AS disagree
    FROM latest GROUP BY scan_id
)"""

_COUNTS = """
SELECT (SELECT count(*) FROM scans) AS scans,
       (SELECT count(*) FROM ingest_errors) AS ingest_errors,
       (SELECT count(*) FROM runs) AS runs,
       (SELECT count(*) FROM labels) AS labels,
       (SELECT count(*) FROM exports) AS exports
"""
_INGEST_ERRORS = """
SELECT reason, message, source_root, source_path, recorded_at
FROM ingest_errors ORDER BY reason, source_path
"""
_RUNS = """
SELECT r.run_id, r.status, r.preset, r.epochs_done, r.spacing_mm, r.threshold_rule,
       r.threshold_score, r.threshold, r.created_at,
       (SELECT count(*) FROM scores s WHERE s.run_id = r.run_id) AS scored,
       (SELECT count(*) FROM embeddings e WHERE e.run_id = r.run_id) AS embedded
FROM runs r ORDER BY r.created_at DESC, r.run_id
"""
_RUN = "SELECT * FROM runs WHERE run_id = ?"
_TRAIN_CURVE = """
SELECT epoch, train_loss, val_loss, learning_rate FROM train_history
WHERE run_id = ? ORDER BY epoch
"""
_EVALUATIONS = """
SELECT method, outlier_type, n_inliers, n_outliers, auroc, average_precision,
       precision_at_t, recall_at_t, spearman_pixel_count
FROM evaluations WHERE run_id = ? ORDER BY outlier_type, method
"""
_SCAN_TABLE = f"""
{_CURRENT}
SELECT s.scan_id, s.series_uid, s.source_root, s.source_path, s.volume_path, s.spacing_mm,
       s.content_hash, s.size_z, s.size_y, s.size_x, s.pixel_count, s.hu_mean, s.hu_min, s.hu_max,
       s.manufacturer, s.kernel,
       coalesce(sc.split, sp.split) AS split, sc.mse, sc.mse_m, sc.mse_region,
       sc.outlier_score, sc.mse_m_z, sc.latent_z, sc.histogram_z, sc.tissue_z, sc.contrast_z,
       sc.shape_z, sc.fov_z, sc.noise_z, sc.streak_z, sc.integrity_z, sc.ring_z, sc.metal_z,
       sc.skin_object_z, sc.inner_object_z, sc.long_object_z, s.noise_hu, s.native_noise_hu,
       s.body_edge_mm, s.field_edge_mm,
       s.streak_contrast, sc.local_error_z, sc.local_error_hu, sc.local_error_interior_hu,
       sc.local_error_shell_hu, sc.local_error_interior_z, sc.local_error_shell_z,
       sc.hot_z, sc.hot_y, sc.hot_x, sc.hot_volume_ml,
       CASE r.threshold_score WHEN 'mse' THEN sc.mse WHEN 'mse_region' THEN sc.mse_region
                              WHEN 'outlier_score' THEN sc.outlier_score
                              WHEN 'local_error_hu' THEN sc.local_error_hu
                              ELSE sc.mse_m END AS score,
       sc.is_outlier, sc.recon_path, sc.error_path,
       e.umap_x, e.umap_y, e.cluster,
       coalesce(f.verdict, c.label) AS label,
       CASE WHEN f.verdict IS NULL THEN c.causes ELSE f.causes END AS causes,
       c.labelled_by, coalesce(c.n_reviewers, 0) AS n_reviewers,
       coalesce(c.disagree, false) AS disagree
FROM scans s
LEFT JOIN scores sc ON sc.scan_id = s.scan_id AND sc.run_id = $run_id
LEFT JOIN splits sp ON sp.scan_id = s.scan_id AND sp.run_id = $run_id
LEFT JOIN runs r ON r.run_id = $run_id
LEFT JOIN embeddings e ON e.scan_id = s.scan_id AND e.run_id = $run_id
LEFT JOIN current c ON c.scan_id = s.scan_id
LEFT JOIN final f ON f.scan_id = s.scan_id
ORDER BY score DESC NULLS LAST, s.scan_id
"""
# The explorer's read: only what its scatters, histograms, split filter and flagged table show,
# for the run's scored scans (unscored ones are never plotted), unsorted (the page sorts the
# few flagged rows). No paths or UIDs: 1M of those strings cost more than the rest together.
# A scan's newest label is necessarily its newest reviewer's current one, so the verdict is one
# grouped pass over the (few) labels with the same (created_at, label_id) order as
# _LATEST_PER_REVIEWER, not a window. Clusters are joined for every scan only when asked
# (colour by cluster); otherwise only for flagged scans: a 1M-row join saved.
_EXPLORER_SCANS = """
WITH reads AS (
    SELECT scan_id,
           arg_max(verdict, (created_at, label_id)) AS label,
           array_to_string(arg_max(causes, (created_at, label_id)), '; ') AS causes
    FROM labels GROUP BY scan_id
),""" + _FINAL + """,
verdict AS (
    SELECT coalesce(r.scan_id, f.scan_id) AS scan_id, coalesce(f.verdict, r.label) AS label,
           CASE WHEN f.verdict IS NULL THEN r.causes ELSE f.causes END AS causes
    FROM reads r FULL JOIN final f ON f.scan_id = r.scan_id
),
clusters AS (
    SELECT e.scan_id, e.cluster FROM embeddings e
    {flagged_only}
    WHERE e.run_id = $run_id
)
SELECT sc.scan_id, sc.split, sc.mse, sc.mse_m, sc.mse_region, sc.outlier_score,
       CASE r.threshold_score WHEN 'mse' THEN sc.mse WHEN 'mse_region' THEN sc.mse_region
                              WHEN 'outlier_score' THEN sc.outlier_score
                              WHEN 'local_error_hu' THEN sc.local_error_hu
                              ELSE sc.mse_m END AS score,
       sc.is_outlier, s.pixel_count, s.hu_mean, s.hu_max, e.cluster, v.label, v.causes
FROM scores sc
JOIN scans s ON s.scan_id = sc.scan_id
LEFT JOIN runs r ON r.run_id = sc.run_id
LEFT JOIN clusters e ON e.scan_id = sc.scan_id
LEFT JOIN verdict v ON v.scan_id = sc.scan_id
WHERE sc.run_id = $run_id
"""
_EXPLORER_SCANS_ALL_CLUSTERS = _EXPLORER_SCANS.format(flagged_only="")
_EXPLORER_SCANS_FLAGGED_CLUSTERS = _EXPLORER_SCANS.format(
    flagged_only="SEMI JOIN scores f ON f.scan_id = e.scan_id AND f.run_id = e.run_id "
    "AND f.is_outlier"
)
_REVIEW_SUMMARY = f"""
{_CURRENT}
SELECT count(*) FILTER (WHERE sc.is_outlier) AS flagged,
       count(c.scan_id) AS reviewed,
       count(c.scan_id) FILTER (WHERE sc.is_outlier) AS flagged_reviewed,
       count(*) FILTER (WHERE c.label = 'outlier') AS labelled_outliers,
       count(*) FILTER (WHERE c.disagree) AS disagreements,
       count(sc.scan_id) FILTER (WHERE sc.is_outlier IS NULL) AS unflagged
FROM scans s
LEFT JOIN scores sc ON sc.scan_id = s.scan_id AND sc.run_id = $run_id
LEFT JOIN current c ON c.scan_id = s.scan_id
"""
_DISAGREEMENTS = f"""
WITH {_LATEST_PER_REVIEWER}
SELECT l.scan_id, any_value(sc.mse_m) AS mse_m, any_value(sc.is_outlier) AS is_outlier,
       string_agg(l.reviewer || ': ' || l.verdict, ', ' ORDER BY l.reviewer) AS verdicts,
       count(*) AS n_reviewers, max(l.created_at) AS last_label_at
FROM latest l
LEFT JOIN scores sc ON sc.scan_id = l.scan_id AND sc.run_id = $run_id
GROUP BY l.scan_id HAVING count(DISTINCT l.verdict) > 1
ORDER BY any_value(sc.mse_m) DESC NULLS LAST, l.scan_id
"""
_REVIEWER_PROGRESS = f"""
WITH {_LATEST_PER_REVIEWER},
flagged AS (SELECT count(*) AS n FROM scores WHERE run_id = $run_id AND is_outlier)
SELECT l.reviewer, count(*) AS scans_labelled,
       count(*) FILTER (WHERE l.verdict = 'outlier') AS outlier,
       count(*) FILTER (WHERE l.verdict = 'inlier') AS inlier,
       count(*) FILTER (WHERE l.verdict = 'unsure') AS unsure,
       count(sc.scan_id) AS flagged_labelled, any_value(f.n) AS flagged_total,
       max(l.created_at) AS last_label_at
FROM latest l CROSS JOIN flagged f
LEFT JOIN scores sc ON sc.scan_id = l.scan_id AND sc.run_id = $run_id AND sc.is_outlier
GROUP BY l.reviewer ORDER BY l.reviewer
"""
_LATENTS = """
SELECT scan_id, latent FROM scores WHERE run_id = ? AND latent IS NOT NULL ORDER BY scan_id
"""
_LABEL_HISTORY = """
SELECT created_at, reviewer, verdict, array_to_string(causes, '; ') AS causes, note, run_id
FROM labels WHERE scan_id = ? ORDER BY created_at DESC, label_id DESC
"""
_SCAN_HISTOGRAM = "SELECT hu_histogram FROM scans WHERE scan_id = ?"
_DATASET_HISTOGRAM = """
SELECT i, sum(h[i])::BIGINT AS count
FROM (SELECT hu_histogram AS h FROM scans WHERE hu_histogram IS NOT NULL),
     range(1, 65) AS t(i)
GROUP BY i ORDER BY i
"""
_EXPORT_LOG = """
SELECT created_at, who, run_id, format, row_count, destination, filter_json
FROM exports ORDER BY created_at DESC, export_id DESC LIMIT ?
"""


def catalog_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Row counts of scans, ingest errors, runs, labels and exports."""
    row = con.execute(_COUNTS).fetchall()[0]
    return dict(zip([d[0] for d in con.description], row, strict=True))


def ingest_error_table(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Inputs ingest refused, with the reason code and the message saying what to do."""
    return con.execute(_INGEST_ERRORS).df()


def run_table(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Every run, newest first, with its threshold and how many scans it scored and embedded."""
    return con.execute(_RUNS).df()


def run_info(con: duckdb.DuckDBPyConnection, run_id: str) -> dict[str, Any] | None:
    """The ``runs`` row of ``run_id`` as a dict, or None when there is no such run."""
    rows = con.execute(_RUN, [run_id]).fetchall()
    if not rows:
        return None
    row = rows[0]
    return dict(zip([d[0] for d in con.description], row, strict=True))


def train_curve(con: duckdb.DuckDBPyConnection, run_id: str) -> pd.DataFrame:
    """Per-epoch training and validation loss of a run."""
    return con.execute(_TRAIN_CURVE, [run_id]).df()


def evaluation_table(con: duckdb.DuckDBPyConnection, run_id: str) -> pd.DataFrame:
    """The run's evaluation against ground truth (empty when `ctae evaluate` has not run)."""
    return con.execute(_EVALUATIONS, [run_id]).df()


def evaluation_base_table(con: duckdb.DuckDBPyConnection, run_id: str) -> pd.DataFrame:
    """The run score per base of the truth file (empty when it named none)."""
    return read_evaluation_bases(con, run_id)


def scan_table(con: duckdb.DuckDBPyConnection, run_id: str | None) -> pd.DataFrame:
    """One row per scan: facts, the run's split/scores/flag/embedding, and the current verdict.

    ``score`` is the score the run's threshold applies to (MSE_m unless the run says otherwise).
    Sorted by score, highest first; unscored scans last.
    """
    # via Arrow: about twice as fast as .df() for 100k rows with string columns
    return con.sql(_SCAN_TABLE, params={"run_id": run_id}).to_arrow_table().to_pandas()


def explorer_scans(
    con: duckdb.DuckDBPyConnection, run_id: str | None, *, all_clusters: bool = False
) -> pd.DataFrame:
    """The run's scored scans with what the outlier explorer plots, filters and lists.

    Columns: scan_id, split, mse, mse_m, mse_region, score, is_outlier, pixel_count, hu_mean,
    hu_max, cluster, label, causes — the same values as in :func:`scan_table`, in no
    particular order. ``cluster`` (nullable Int32) is filled for every scan when
    ``all_clusters``, else only for flagged ones. Empty when the run has no scores.
    """
    sql = _EXPLORER_SCANS_ALL_CLUSTERS if all_clusters else _EXPLORER_SCANS_FLAGGED_CLUSTERS
    table = con.sql(sql, params={"run_id": run_id}).to_arrow_table()
    # nullable integers: a missing cluster must not turn the others into floats (2.0)
    return table.to_pandas(types_mapper={pa.int32(): pd.Int32Dtype()}.get)


def review_summary(con: duckdb.DuckDBPyConnection, run_id: str | None) -> dict[str, int]:
    """Counts of flagged scans, reviewed scans, reviewed flagged scans, labelled outliers,
    disagreements, and scored scans with no flag yet (a scoring running, or stopped before T)."""
    row = con.execute(_REVIEW_SUMMARY, {"run_id": run_id}).fetchall()[0]
    return dict(zip([d[0] for d in con.description], row, strict=True))


def disagreements(con: duckdb.DuckDBPyConnection, run_id: str | None) -> pd.DataFrame:
    """Scans whose reviewers' current verdicts differ, highest MSE_m first."""
    return con.execute(_DISAGREEMENTS, {"run_id": run_id}).df()


def reviewer_progress(con: duckdb.DuckDBPyConnection, run_id: str | None) -> pd.DataFrame:
    """Per reviewer: scans labelled by verdict, and flagged scans of the run labelled so far."""
    return con.execute(_REVIEWER_PROGRESS, {"run_id": run_id}).df()


def latent_table(con: duckdb.DuckDBPyConnection, run_id: str | None) -> pd.DataFrame:
    """The run's latent vector of each scored scan (scan_id, latent)."""
    return con.execute(_LATENTS, [run_id]).df()


def label_history(con: duckdb.DuckDBPyConnection, scan_id: str) -> pd.DataFrame:
    """Every label ever given to a scan, newest first."""
    return con.execute(_LABEL_HISTORY, [scan_id]).df()


def scan_hu_histogram(con: duckdb.DuckDBPyConnection, scan_id: str) -> list[int] | None:
    """The scan's 64-bin HU histogram (counts from −1024 to 3072 HU, step 64), or None."""
    rows = con.execute(_SCAN_HISTOGRAM, [scan_id]).fetchall()
    return None if not rows or rows[0][0] is None else [int(v) for v in rows[0][0]]


def dataset_hu_histogram(con: duckdb.DuckDBPyConnection) -> list[int]:
    """The 64-bin HU histogram summed over every scan (empty list for an empty catalog)."""
    rows = con.execute(_DATASET_HISTOGRAM).fetchall()
    return [int(count or 0) for _, count in rows]


def job_table(con: duckdb.DuckDBPyConnection, limit: int = 20) -> pd.DataFrame:
    """The latest ``limit`` jobs, newest first: which, how it ended (or ``running``), on which
    run, when, how long, and in which process."""
    return pd.DataFrame(job_list(con, limit), columns=JOB_COLUMNS)


def export_log(con: duckdb.DuckDBPyConnection, limit: int = 20) -> pd.DataFrame:
    """The latest exports: who, when, which run and filter, how many rows, where to."""
    return con.execute(_EXPORT_LOG, [limit]).df()
