"""What score, embed and evaluate read and write: scores, scan_failures, embeddings,
evaluations, and a run's threshold (rule, parameters, T) with the flags it implies.

Changing the threshold re-flags the stored scores in SQL; nothing is re-scored.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from data_catalog.connection import transaction
from data_catalog.scans import SCAN_ORDER

SCORE_COLUMNS = ("outlier_score", "mse_m", "mse", "mse_region", "local_error_hu")
"""Scores a threshold may apply to (the only identifiers ever formatted into SQL here)."""
REGION_Z_COLUMNS = ("local_error_interior_z", "local_error_shell_z")
"""The local error's z inside the patient and on its shell: stored beside the evidence, not kinds
of it (ctae_core/outlier_score.py ``LOCAL_ERROR_REGIONS``)."""
EVIDENCE_COLUMNS = ("mse_m_z", "latent_z", "histogram_z", "tissue_z", "contrast_z", "shape_z",
                    "fov_z", "noise_z", "streak_z", "integrity_z", "ring_z", "metal_z", "skin_object_z",
                    "inner_object_z", "long_object_z", "local_error_z",
                    "outlier_score", *REGION_Z_COLUMNS)
"""What :func:`write_outlier_evidence` sets (ctae_core/outlier_score.py)."""


@dataclass(frozen=True)
class ScoreRecord:
    """One scored scan of one run (a ``scores`` row)."""

    run_id: str
    scan_id: str
    split: str
    mse: float
    mse_region: float
    mse_m: float
    max_error_zyx: tuple[int, int, int]
    error_fraction: float
    recon_path: str | None
    error_path: str | None
    latent: Sequence[float]
    hot_zyx: tuple[int, int, int] | None = None
    hot_mm_zyx: tuple[float, float, float] | None = None
    hot_volume_ml: float | None = None
    local_error_hu: float | None = None
    local_error_interior_hu: float | None = None
    local_error_shell_hu: float | None = None


_RUN = """
SELECT run_id, status, checkpoint_path, spacing_mm, norm_mean, norm_std, threshold_rule,
       threshold_params_json, threshold, threshold_score, embed_params_json
FROM runs WHERE run_id = ?
"""


def read_run(con: duckdb.DuckDBPyConnection, run_id: str) -> dict[str, Any] | None:
    """The run's facts score/embed/evaluate need (checkpoint, norm, threshold), or None."""
    cur = con.execute(_RUN, [run_id])
    row = cur.fetchone()
    if row is None:
        return None
    return dict(zip([d[0] for d in cur.description], row, strict=True))


def run_ids(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Every run's name, for "did you mean" messages."""
    return [r[0] for r in con.execute("SELECT run_id FROM runs ORDER BY run_id").fetchall()]


_TO_SCORE = """
SELECT s.scan_id, s.volume_path, s.spacing_mm, s.pixel_count, s.size_z,
       coalesce(sp.split, 'unseen') AS split
FROM scans s
LEFT JOIN splits sp ON sp.scan_id = s.scan_id AND sp.run_id = $run_id
WHERE $overwrite OR NOT EXISTS (
    SELECT 1 FROM scores r WHERE r.run_id = $run_id AND r.scan_id = s.scan_id)
ORDER BY s.size_z * s.spacing_mm, s.scan_id
"""


def scans_to_score(
    con: duckdb.DuckDBPyConnection, run_id: str, *, overwrite: bool = False
) -> pd.DataFrame:
    """Scans the run has not scored yet (all with ``overwrite``), with their split; scans
    ingested after training get split ``unseen``. Ordered by physical length, so batches hold
    scans of similar padded size."""
    return con.execute(_TO_SCORE, {"run_id": run_id, "overwrite": overwrite}).df()


_UPSERT_SCORE = """
INSERT OR REPLACE INTO scores (run_id, scan_id, split, mse, mse_region, mse_m, is_outlier,
    max_error_z, max_error_y, max_error_x, error_fraction, recon_path, error_path, latent,
    hot_z, hot_y, hot_x, hot_z_mm, hot_y_mm, hot_x_mm, hot_volume_ml, local_error_hu,
    local_error_interior_hu, local_error_shell_hu, scored_at)
VALUES (?, ?, ?, ?, ?, ?, NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, current_timestamp)
"""


def write_scores(con: duckdb.DuckDBPyConnection, records: Iterable[ScoreRecord]) -> int:
    """Insert or replace score rows in one transaction (flags stay NULL until re-flagged);
    clears the scans' earlier score failures. Returns the row count."""
    rows = [
        [r.run_id, r.scan_id, r.split, r.mse, r.mse_region, r.mse_m, *map(int, r.max_error_zyx),
         r.error_fraction, r.recon_path, r.error_path, [float(v) for v in r.latent],
         *(r.hot_zyx or (None,) * 3), *(r.hot_mm_zyx or (None,) * 3), r.hot_volume_ml,
         r.local_error_hu, r.local_error_interior_hu, r.local_error_shell_hu]
        for r in records
    ]
    if not rows:
        return 0
    with transaction(con):
        con.executemany(_UPSERT_SCORE, rows)
        con.executemany(
            "DELETE FROM scan_failures WHERE run_id = ? AND scan_id = ? AND job = 'score'",
            [[r[0], r[1]] for r in rows],
        )
    return len(rows)


def read_scores(con: duckdb.DuckDBPyConnection, run_id: str) -> pd.DataFrame:
    """Every score row of the run, ordered by scan_id."""
    return con.execute("SELECT * FROM scores WHERE run_id = ? ORDER BY scan_id", [run_id]).df()


def record_scan_failure(
    con: duckdb.DuckDBPyConnection, run_id: str, scan_id: str, job: str, message: str
) -> None:
    """Record (or update) why ``job`` could not process a scan for the run."""
    con.execute(
        "INSERT OR REPLACE INTO scan_failures (run_id, scan_id, job, message, recorded_at) "
        "VALUES (?, ?, ?, ?, current_timestamp)",
        [run_id, scan_id, job, message],
    )


def read_scan_failures(con: duckdb.DuckDBPyConnection, run_id: str) -> pd.DataFrame:
    """The run's recorded scan failures, newest first."""
    return con.execute(
        "SELECT * FROM scan_failures WHERE run_id = ? ORDER BY recorded_at DESC, scan_id", [run_id]
    ).df()


def validation_scores(con: duckdb.DuckDBPyConnection, run_id: str, score: str) -> np.ndarray:
    """The named score of the run's validation-split scans (what T is fitted on)."""
    column = _score_column(score)
    rows = con.execute(
        f"SELECT {column} FROM scores WHERE run_id = ? AND split = 'val' AND {column} IS NOT NULL",
        [run_id],
    ).fetchall()
    return np.array([r[0] for r in rows], dtype=np.float64)


def set_threshold(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    *,
    rule: str,
    params: dict[str, Any],
    threshold: float,
    score: str,
) -> int:
    """Store the run's rule, parameters and T, and re-flag every score row (score > T) in one
    transaction. Returns the number of flagged scans."""
    column = _score_column(score)
    with transaction(con):
        con.execute(
            "UPDATE runs SET threshold_rule = ?, threshold_params_json = ?, threshold = ?, "
            "threshold_score = ?, updated_at = current_timestamp WHERE run_id = ?",
            [rule, json.dumps(params, sort_keys=True), float(threshold), score, run_id],
        )
        con.execute(
            f"UPDATE scores SET is_outlier = coalesce({column} > ?, false) WHERE run_id = ?",
            [float(threshold), run_id],
        )
    return con.execute(
        "SELECT count(*) FROM scores WHERE run_id = ? AND is_outlier", [run_id]
    ).fetchone()[0]


def forget_stale_threshold(con: duckdb.DuckDBPyConnection, run_id: str) -> float | None:
    """Where some of the run's scores have no flag (rewritten by a scoring that could not fit a
    new T), clear the run's T and every flag, in one transaction: the T left from an earlier
    scoring (another model, another validation split) does not describe these scores, and until
    stop 58 the run named it while half its scans had no flag. Returns the T cleared, or None."""
    (unflagged,), = con.execute("SELECT count(*) FROM scores WHERE run_id = ? AND is_outlier IS NULL",
                                [run_id]).fetchall()
    (threshold,), = con.execute("SELECT threshold FROM runs WHERE run_id = ?", [run_id]).fetchall()
    if not unflagged or threshold is None:
        return None
    with transaction(con):
        con.execute("UPDATE runs SET threshold = NULL, updated_at = current_timestamp WHERE run_id = ?",
                    [run_id])
        con.execute("UPDATE scores SET is_outlier = NULL WHERE run_id = ?", [run_id])
    return float(threshold)


def stored_volumes(con: duckdb.DuckDBPyConnection, run_id: str) -> pd.DataFrame:
    """Scans of the run with stored recon/error volumes: scan_id, is_outlier, the two paths."""
    return con.execute(
        "SELECT scan_id, is_outlier, recon_path, error_path FROM scores "
        "WHERE run_id = ? AND (recon_path IS NOT NULL OR error_path IS NOT NULL) ORDER BY scan_id",
        [run_id],
    ).df()


def scores_without_error_regions(con: duckdb.DuckDBPyConnection, run_id: str) -> pd.DataFrame:
    """Scored scans of the run whose anomaly map is stored but whose interior and shell peaks
    (v19) were never measured: scan_id, error_path, volume_path, the stored spacing and the run's."""
    return con.execute(
        "SELECT sc.scan_id, sc.error_path, s.volume_path, s.spacing_mm, r.spacing_mm AS run_spacing_mm "
        "FROM scores sc JOIN scans s USING (scan_id) JOIN runs r USING (run_id) "
        "WHERE sc.run_id = ? AND sc.error_path IS NOT NULL "
        "AND (sc.local_error_interior_hu IS NULL OR sc.local_error_shell_hu IS NULL) ORDER BY sc.scan_id",
        [run_id],
    ).df()


def write_error_regions(con: duckdb.DuckDBPyConnection, run_id: str,
                        rows: Sequence[tuple[str, float, float]]) -> int:
    """Store (scan_id, interior peak, shell peak) of the run's scans; returns the row count."""
    if not rows:
        return 0
    with transaction(con):
        con.executemany(
            "UPDATE scores SET local_error_interior_hu = ?, local_error_shell_hu = ? "
            "WHERE run_id = ? AND scan_id = ?",
            [[float(inner), float(shell), run_id, scan_id] for scan_id, inner, shell in rows],
        )
    return len(rows)


def hottest_region_inputs(con: duckdb.DuckDBPyConnection, run_id: str) -> pd.DataFrame:
    """The run's scans with a stored map and both region peaks (v19): scan_id, error_path,
    volume_path, the stored spacing and shape, the stored hottest voxel and the two peaks."""
    return con.execute(
        "SELECT sc.scan_id, sc.error_path, s.volume_path, s.spacing_mm, s.size_z, s.size_y, s.size_x, "
        "sc.hot_z, sc.hot_y, sc.hot_x, sc.local_error_interior_hu, sc.local_error_shell_hu "
        "FROM scores sc JOIN scans s USING (scan_id) WHERE sc.run_id = ? AND sc.error_path IS NOT NULL "
        "AND sc.hot_z IS NOT NULL AND sc.local_error_interior_hu IS NOT NULL "
        "AND sc.local_error_shell_hu IS NOT NULL ORDER BY sc.scan_id",
        [run_id],
    ).df()


def write_hottest_regions(con: duckdb.DuckDBPyConnection, run_id: str,
                          rows: Sequence[tuple[str, tuple[int, int, int], float, float]]) -> int:
    """Store (scan_id, hottest voxel on the stored grid, stored spacing mm, region volume mL) as
    the scans' hottest region; returns the row count."""
    if not rows:
        return 0
    with transaction(con):
        con.executemany(
            "UPDATE scores SET hot_z = ?, hot_y = ?, hot_x = ?, hot_z_mm = ?, hot_y_mm = ?, "
            "hot_x_mm = ?, hot_volume_ml = ? WHERE run_id = ? AND scan_id = ?",
            [[*map(int, zyx), *(float(i) * spacing for i in zyx), float(volume_ml), run_id, scan_id]
             for scan_id, zyx, spacing, volume_ml in rows],
        )
    return len(rows)


def forget_volumes(con: duckdb.DuckDBPyConnection, run_id: str, scan_ids: Sequence[str]) -> None:
    """Set recon_path and error_path to NULL for these scans (their files were removed)."""
    con.executemany(
        "UPDATE scores SET recon_path = NULL, error_path = NULL WHERE run_id = ? AND scan_id = ?",
        [[run_id, s] for s in scan_ids],
    )


def latents_for_run(con: duckdb.DuckDBPyConnection, run_id: str) -> tuple[list[str], np.ndarray]:
    """(scan_ids, (N, D) float32 latents) of the run's scored scans that have a latent, in
    ``SCAN_ORDER`` (UMAP's layout follows its input's order)."""
    rows = con.execute(
        "SELECT sc.scan_id, sc.latent FROM scores sc JOIN scans s ON s.scan_id = sc.scan_id "
        f"WHERE sc.run_id = ? AND sc.latent IS NOT NULL ORDER BY {SCAN_ORDER}",
        [run_id],
    ).fetchall()
    if not rows:
        return [], np.zeros((0, 0), dtype=np.float32)
    return [r[0] for r in rows], np.array([r[1] for r in rows], dtype=np.float32)


def _score_column(score: str) -> str:
    if score not in SCORE_COLUMNS:
        raise ValueError(f"score must be one of {', '.join(SCORE_COLUMNS)}, not {score!r}")
    return score


def embedding_state(con: duckdb.DuckDBPyConnection, run_id: str) -> tuple[dict[str, Any] | None, set[str]]:
    """(stored embed parameters or None, scan_ids already embedded) of the run."""
    row = con.execute("SELECT embed_params_json FROM runs WHERE run_id = ?", [run_id]).fetchone()
    params = json.loads(row[0]) if row and row[0] else None
    ids = {r[0] for r in con.execute(
        "SELECT scan_id FROM embeddings WHERE run_id = ?", [run_id]).fetchall()}
    return params, ids


def write_embeddings(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    scan_ids: Sequence[str],
    points: np.ndarray,
    clusters: np.ndarray,
    params: dict[str, Any],
) -> int:
    """Replace the run's embedding (UMAP x/y and DBSCAN cluster per scan) and its parameters
    in one transaction. Returns the row count."""
    frame = pd.DataFrame({
        "run_id": run_id,
        "scan_id": list(scan_ids),
        "umap_x": np.asarray(points, dtype=np.float64)[:, 0],
        "umap_y": np.asarray(points, dtype=np.float64)[:, 1],
        "cluster": np.asarray(clusters, dtype=np.int32),
    })
    with transaction(con):
        con.execute("DELETE FROM embeddings WHERE run_id = ?", [run_id])
        con.register("new_embeddings", frame)
        try:
            con.execute("INSERT INTO embeddings SELECT run_id, scan_id, umap_x, umap_y, cluster "
                        "FROM new_embeddings")
        finally:
            con.unregister("new_embeddings")
        con.execute(
            "UPDATE runs SET embed_params_json = ?, updated_at = current_timestamp WHERE run_id = ?",
            [json.dumps(params, sort_keys=True), run_id],
        )
    return len(frame)


def read_embeddings(con: duckdb.DuckDBPyConnection, run_id: str) -> pd.DataFrame:
    """The run's embedding points, ordered by scan_id."""
    return con.execute(
        "SELECT scan_id, umap_x, umap_y, cluster FROM embeddings WHERE run_id = ? ORDER BY scan_id",
        [run_id],
    ).df()


_CLUSTER_STATS = """
SELECT e.cluster,
       count(*) AS n_scans,
       count(*) FILTER (WHERE sc.is_outlier) AS n_outliers,
       avg(sc.mse_m) AS mse_m_mean, median(sc.mse_m) AS mse_m_median,
       avg(sc.mse) AS mse_mean, median(sc.mse) AS mse_median,
       avg(s.pixel_count) AS pixel_count_mean, median(s.pixel_count) AS pixel_count_median,
       avg(s.hu_max) AS hu_max_mean
FROM embeddings e
JOIN scores sc ON sc.run_id = e.run_id AND sc.scan_id = e.scan_id
JOIN scans s ON s.scan_id = e.scan_id
WHERE e.run_id = ?
GROUP BY e.cluster
ORDER BY n_scans DESC, e.cluster
"""


def cluster_statistics(con: duckdb.DuckDBPyConnection, run_id: str) -> pd.DataFrame:
    """Per DBSCAN cluster (-1 = noise): size, outliers, MSE/MSE_m and pixel-count mean/median
    (thesis Figs. 4.21–4.22), largest cluster first."""
    return con.execute(_CLUSTER_STATS, [run_id]).df()


_EVIDENCE_INPUTS = f"""
SELECT sc.scan_id, sc.split, sc.mse_m, sc.local_error_hu, sc.local_error_interior_hu,
       sc.local_error_shell_hu, s.pixel_count, sc.latent, s.hu_histogram,
       s.noise_hu, s.native_noise_hu, s.native_noise_hu IS NULL AS native_noise_unmeasured,
       s.orig_spacing_x_mm AS pixel_mm,
       s.body_edge_mm, s.body_profile, s.streak_contrast, s.ring_contrast, s.field_edge_mm,
       s.native_metal_mm3, s.skin_object_mm3, s.inner_object_mm3, s.longest_object_mm,
       coalesce(s.missing_slices, 0) + coalesce(s.duplicate_slices, 0) AS series_defects,
       s.manufacturer, s.model, s.kernel, s.slice_thickness_mm,
       s.orig_size_x * s.orig_spacing_x_mm AS fov_mm,
       s.orig_size_z * s.orig_spacing_z_mm AS coverage_mm
FROM scores sc JOIN scans s ON s.scan_id = sc.scan_id
WHERE sc.run_id = ?
ORDER BY {SCAN_ORDER}
"""


def evidence_inputs(con: duckdb.DuckDBPyConnection, run_id: str) -> pd.DataFrame:
    """What the run's outlier score is computed from, per scored scan: split, MSE_m, pixel
    count, latent vector, HU histogram, noise, body outline, streak and ring contrast, metal
    away from bone on the acquired grid, series defects (slices missing plus duplicated) and how it was acquired (manufacturer, scanner
    model, kernel, slice thickness, field of view and acquired scan length in mm)."""
    return con.execute(_EVIDENCE_INPUTS, [run_id]).df()


def write_outlier_evidence(
    con: duckdb.DuckDBPyConnection, run_id: str, scan_ids: Sequence[str],
    columns: dict[str, np.ndarray],
) -> int:
    """Set the evidence columns (``EVIDENCE_COLUMNS``; NaN stored as NULL) of the run's scans in
    one transaction. Returns the number of rows updated."""
    if set(columns) != set(EVIDENCE_COLUMNS):
        raise ValueError(f"evidence columns must be {EVIDENCE_COLUMNS}, got {tuple(columns)}")
    frame = pd.DataFrame({"scan_id": list(scan_ids)})
    for name in EVIDENCE_COLUMNS:
        values = np.asarray(columns[name], dtype=np.float64)
        frame[name] = np.where(np.isfinite(values), values, np.nan)
    assignments = ", ".join(f"{c} = ev.{c}" for c in EVIDENCE_COLUMNS)
    with transaction(con):
        con.register("ev", frame)
        try:
            con.execute(
                f"UPDATE scores SET {assignments} FROM ev "
                "WHERE scores.run_id = ? AND scores.scan_id = ev.scan_id",
                [run_id],
            )
        finally:
            con.unregister("ev")
    return len(frame)


_EVALUATION_INPUTS = f"""
SELECT s.scan_id, s.series_uid, s.source_path, sc.split, sc.mse, sc.mse_region, sc.mse_m,
       sc.mse_m_z, sc.latent_z, sc.histogram_z, sc.tissue_z, sc.contrast_z, sc.shape_z,
       sc.fov_z, sc.noise_z, sc.streak_z, sc.integrity_z, sc.ring_z, sc.metal_z, sc.skin_object_z,
       sc.inner_object_z, sc.long_object_z, sc.local_error_z, sc.local_error_hu,
       sc.outlier_score, sc.is_outlier, sc.error_path, sc.hot_z, sc.hot_y, sc.hot_x,
       s.spacing_mm, s.size_z, s.size_y, s.size_x, s.pixel_count, s.hu_mean, s.hu_std, s.hu_min, s.hu_max, s.hu_p1, s.hu_p99,
       s.body_voxels, s.metal_voxels, s.hu_histogram
FROM scores sc JOIN scans s ON s.scan_id = sc.scan_id
WHERE sc.run_id = ?
ORDER BY {SCAN_ORDER}
"""


def evaluation_inputs(con: duckdb.DuckDBPyConnection, run_id: str) -> pd.DataFrame:
    """Each scored scan of the run with its scores, split and the ingest statistics the
    baselines use (pixel statistics, HU histogram)."""
    return con.execute(_EVALUATION_INPUTS, [run_id]).df()


_EVALUATION_COLUMNS = (
    "method", "outlier_type", "n_inliers", "n_outliers", "auroc", "average_precision",
    "precision_at_t", "recall_at_t", "false_alarm_rate", "spearman_pixel_count",
)


def write_evaluations(
    con: duckdb.DuckDBPyConnection, run_id: str, rows: Iterable[dict[str, Any]], truth_path: str
) -> int:
    """Replace the run's evaluation rows (NaN metrics stored as NULL). Returns the row count."""
    return _replace_run_rows(con, "evaluations", _EVALUATION_COLUMNS, run_id, rows, truth_path)


_EVALUATION_BASE_COLUMNS = (
    "base", "n_inliers", "n_outliers", "auroc_within", "auroc_cohort", "recall_at_t", "inliers_flagged",
)


def write_evaluation_bases(
    con: duckdb.DuckDBPyConnection, run_id: str, rows: Iterable[dict[str, Any]], truth_path: str
) -> int:
    """Replace the run's per-base rows (``ctae_core.evaluation.BaseRow`` as dicts; NaN stored as
    NULL; none: the truth file named no bases, and the run keeps none). Returns the row count."""
    return _replace_run_rows(con, "evaluation_bases", _EVALUATION_BASE_COLUMNS, run_id, rows, truth_path)


def _replace_run_rows(con: duckdb.DuckDBPyConnection, table: str, columns: tuple[str, ...], run_id: str,
                      rows: Iterable[dict[str, Any]], truth_path: str) -> int:
    """One evaluation table's rows of the run replaced by ``rows`` (their ``columns``, NaN as NULL,
    stamped with ``truth_path``; ``evaluated_at`` is the table's default, the time of writing)."""
    values = [[run_id, *(_nan_to_none(row[c]) for c in columns), truth_path] for row in rows]
    with transaction(con):
        con.execute(f"DELETE FROM {table} WHERE run_id = ?", [run_id])
        if values:
            con.executemany(
                f"INSERT INTO {table} (run_id, {', '.join(columns)}, truth_path) "
                f"VALUES ({', '.join('?' * (len(columns) + 2))})",
                values,
            )
    return len(values)


def read_evaluation_bases(con: duckdb.DuckDBPyConnection, run_id: str) -> pd.DataFrame:
    """The run's per-base rows, by base."""
    return con.execute(
        f"SELECT {', '.join(_EVALUATION_BASE_COLUMNS)} FROM evaluation_bases WHERE run_id = ? ORDER BY base",
        [run_id],
    ).df()


def read_evaluations(con: duckdb.DuckDBPyConnection, run_id: str) -> pd.DataFrame:
    """The run's evaluation rows, ``all`` first, then per outlier type."""
    return con.execute(
        "SELECT * FROM evaluations WHERE run_id = ? "
        "ORDER BY outlier_type <> 'all', outlier_type, method",
        [run_id],
    ).df()


def _nan_to_none(value: Any) -> Any:
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value
