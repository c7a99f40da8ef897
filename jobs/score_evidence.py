"""The run's outlier score: its evidence, fitted and calibrated from what `ctae score` stored
(MSE_m, latents, HU histograms, acquisition measures), written back to the catalog."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np

from data_catalog import CatalogSettings, connect
from data_catalog import scores as catalog_scores
from data_catalog.scans import DENSE_OBJECT_MEASURES
from jobs.acquisition import measure_stored_scans
from jobs.error_regions import measure_error_regions, move_hottest_regions
from jobs.runtime import stack_lists

if TYPE_CHECKING:
    import pandas as pd

    from ctae_core.outlier_score import AcquisitionInputs

logger = logging.getLogger(__name__)


def update_outlier_score(settings: CatalogSettings, run_id: str) -> dict[str, Any]:
    """Recompute the run's outlier score and its evidence for every scored scan (normal is
    fitted on, and z-scores calibrated against, every scored scan) and store them.
    Cheap (no model), so it is redone whenever scans are added. Scans not yet measured (noise,
    body outline, streaks) are measured first, from their stored volumes. Returns counts for
    job_runs."""
    from ctae_core.outlier_score import acquisition_groups, outlier_evidence

    counts: dict[str, Any] = {**measure_stored_scans(settings), **measure_error_regions(settings, run_id)}
    with connect(settings.catalog_path) as con:
        inputs = catalog_scores.evidence_inputs(con, run_id)
    if inputs.empty:
        return {**counts, "outlier_scores": 0}
    latents = stack_lists(inputs["latent"])
    histograms = stack_lists(inputs["hu_histogram"])
    if histograms is None:
        logger.warning("run=%s: some scans lack an HU histogram (ingested by an older ctae?); the "
                       "outlier score leaves histogram, tissue and contrast evidence out — "
                       "re-ingest to add it", run_id)
    unmeasured = int(inputs[list(DENSE_OBJECT_MEASURES)].isna().any(axis=1).sum())
    if unmeasured:
        logger.warning("run=%s: %d scan(s) lack the metal or dense objects measured at ingest "
                       "(ingested before schema v10 / v11); that evidence is left out — run "
                       "`ctae ingest` on their folders again to measure it", run_id, unmeasured)
    noise_unmeasured = int(inputs["native_noise_unmeasured"].sum())
    if noise_unmeasured:
        logger.warning("run=%s: %d scan(s) lack the image noise measured at ingest on the "
                       "acquired grid (ingested before schema v17); the noise evidence reads the "
                       "stored 3 mm volume's noise for every scan instead, which mostly hides "
                       "heavy noise — run `ctae ingest` on their folders again to measure it",
                       run_id, noise_unmeasured)
    regions = error_region_inputs(inputs, run_id)
    evidence = outlier_evidence(
        inputs["mse_m"].to_numpy(dtype=np.float64, na_value=np.nan),
        inputs["pixel_count"].to_numpy(dtype=np.float64),
        latents, histograms, reference_rows=np.ones(len(inputs), dtype=bool),
        acquisition=acquisition_inputs(inputs),
        groups=acquisition_groups(inputs["manufacturer"].to_numpy(), inputs["kernel"].to_numpy(),
                                  inputs["model"].to_numpy(), inputs["coverage_mm"].to_numpy()),
        local_error=inputs["local_error_hu"].to_numpy(dtype=np.float64, na_value=np.nan),
        local_error_regions=regions,
    )
    n_scored = int(np.isfinite(evidence.outlier_score).sum())
    if n_scored == 0:
        logger.warning("run=%s: too few training scans to fit the outlier score; threshold "
                       "--score mse_m instead", run_id)
    with connect(settings.catalog_path) as con:
        catalog_scores.write_outlier_evidence(con, run_id, list(inputs["scan_id"]),
                                              evidence.as_columns())
    if regions is not None:  # the hottest region where the rarer region's peak is
        interior_rarer = evidence.local_error_interior_z >= evidence.local_error_shell_z
        counts.update(move_hottest_regions(settings, run_id, inputs["scan_id"].to_numpy(), interior_rarer))
    return {**counts, "outlier_scores": n_scored}


def error_region_inputs(inputs: pd.DataFrame, run_id: str) -> tuple[np.ndarray, np.ndarray] | None:
    """The (interior, shell) peaks of ``evidence_inputs`` rows where every scan with a local
    error has both (v19), else None: the local error then reads each scan's whole-map peak, one
    measure for every scan, as the scans compare with each other."""
    peaks = [inputs[c].to_numpy(dtype=np.float64, na_value=np.nan)
             for c in ("local_error_interior_hu", "local_error_shell_hu")]
    has_error = np.isfinite(inputs["local_error_hu"].to_numpy(dtype=np.float64, na_value=np.nan))
    missing = int((has_error & ~(np.isfinite(peaks[0]) & np.isfinite(peaks[1]))).sum())
    if missing:
        logger.warning("run=%s: %d scan(s) lack the anomaly map's interior and shell peaks (scored "
                       "before schema v19, their maps not kept); the local error reads the whole "
                       "map's peak for every scan — `ctae score --run %s --overwrite` measures them",
                       run_id, missing, run_id)
        return None
    return peaks[0], peaks[1]


def acquisition_inputs(inputs: pd.DataFrame) -> AcquisitionInputs:
    """``AcquisitionInputs`` of ``evidence_inputs`` rows: a scan never measured, or measured
    without a body, has NaN noise / outline / rings (its evidence is left out, not guessed).
    The noise is the one measured at ingest on the acquired grid where every scan has it (v17),
    else the stored volume's for every scan: the two differ in scale, and the evidence compares
    scans with each other."""
    from ctae_core.acquisition import PROFILE_DIRECTIONS
    from ctae_core.outlier_score import AcquisitionInputs

    nan_profile = [np.nan] * PROFILE_DIRECTIONS
    profiles = np.array([
        list(p) if isinstance(p, list | tuple | np.ndarray) and len(p) == PROFILE_DIRECTIONS
        else nan_profile for p in inputs["body_profile"]
    ], dtype=np.float64).reshape(len(inputs), PROFILE_DIRECTIONS)
    edge = inputs["body_edge_mm"].to_numpy(dtype=np.float64, na_value=np.nan)
    native = not inputs["native_noise_unmeasured"].any()  # one measure for every scan, or none
    noise = inputs["native_noise_hu" if native else "noise_hu"]
    return AcquisitionInputs(
        noise_hu=noise.to_numpy(dtype=np.float64, na_value=np.nan),
        body_shape=np.column_stack([profiles, edge]),
        streak_contrast=inputs["streak_contrast"].to_numpy(dtype=np.float64, na_value=np.nan),
        series_defects=inputs["series_defects"].to_numpy(dtype=np.float64, na_value=np.nan),
        ring_contrast=inputs["ring_contrast"].to_numpy(dtype=np.float64, na_value=np.nan),
        field_edge_mm=inputs["field_edge_mm"].to_numpy(dtype=np.float64, na_value=np.nan),
        native_metal_mm3=inputs["native_metal_mm3"].to_numpy(dtype=np.float64, na_value=np.nan),
        skin_object_mm3=inputs["skin_object_mm3"].to_numpy(dtype=np.float64, na_value=np.nan),
        inner_object_mm3=inputs["inner_object_mm3"].to_numpy(dtype=np.float64, na_value=np.nan),
        longest_object_mm=inputs["longest_object_mm"].to_numpy(dtype=np.float64, na_value=np.nan),
        noise_pixel_mm=inputs["pixel_mm"].to_numpy(dtype=np.float64, na_value=np.nan) if native else None,
    )
