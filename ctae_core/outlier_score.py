"""The run's outlier score: four kinds of evidence that a scan does not belong, each calibrated
against the validation split, combined into one number that T applies to.

Why not MSE_m alone (measured on the demo cohort, README "Detection quality"): a
reconstruction error only sees what the autoencoder fails to reproduce. Local objects (metal,
leads, cables) are missed by the model and stand out; *global* departures — a wrong rescale
intercept, no contrast, heavy noise, a patient off the isocentre — look normal voxel by voxel,
are reproduced, and score like inliers. MSE_m also falls with scan size (thesis Fig. 4.2). So:

- ``mse_m_z``: log MSE_m relative to the MSE_m expected at the scan's pixel count (a log-log
  line fitted on the training split), which removes the size bias;
- ``latent_z``: Mahalanobis distance of the scan's latent vector from the training scans'
  (the autoencoder's own description of the scan: position, anatomy, field of view);
- ``histogram_z``: Mahalanobis distance of the scan's HU histogram from the training scans'
  (intensity calibration, noise, metal), over the voxels above the air bin: the share of
  air is the field of view's, not the body's, and made the distance fall with scan size;
- ``tissue_z``: the same for the scan's tissue composition — log shares of its non-air voxels
  in eight HU ranges (lung, lung edge, fat, soft tissue, enhanced tissue, contrast-filled blood
  and cancellous bone, cortical bone, metal). Sixty-three fine bins spread a missing contrast
  agent over a few noisy dimensions; eight ranges make it one clear one (non-contrast AUROC
  0.54 → 0.81 on the demo cohort's 119 planted outliers).

Each is turned into a robust z (median and MAD of the validation split, log scale), and the
score is Fisher's combination of their upper-tail probabilities under a normal reference:
``outlier_score = Σ −log P(Z > z_i)``. One strong kind of evidence or several moderate ones
both raise it; an unusually *low* error cannot.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

from ctae_core.evaluation import histogram_features, mahalanobis_scores
from ctae_core.stats import HU_HISTOGRAM_EDGES
from ctae_core.thresholds import MAD_TO_STD

MIN_FIT_SCANS = 5
"""Training-split scans needed to fit the size line and the two distances."""
MIN_CALIBRATION_SCANS = 8
"""Validation scans needed to calibrate alone; with fewer, training scans join them."""
EVIDENCE = ("mse_m_z", "latent_z", "histogram_z", "tissue_z")
AIR_BINS = 1
"""Leading bins of ``ctae_core.stats.HU_HISTOGRAM_EDGES`` left out of the histogram evidence
(−1024 to −960 HU: air). Keeping them: Spearman ρ with pixel count −0.45 among inliers, −0.22
without, at the same AUROC (demo cohort)."""
TISSUE_RANGE_STARTS_HU = (-960, -576, -192, -64, 128, 256, 512, 1536)
"""Lower edges of the tissue-composition ranges (on ``HU_HISTOGRAM_EDGES`` bin edges); each
range ends where the next starts, the last at the histogram's end."""
TISSUE_SHARE_FLOOR = 1e-4
"""Added to each share before the log, so an empty range (no metal) is finite."""


@dataclass(frozen=True)
class OutlierEvidence:
    """Per-scan evidence (N,) arrays; NaN where a scan lacks the input (e.g. no histogram)."""

    mse_m_z: np.ndarray
    latent_z: np.ndarray
    histogram_z: np.ndarray
    tissue_z: np.ndarray
    outlier_score: np.ndarray

    def as_columns(self) -> dict[str, np.ndarray]:
        """Column name → values, in the catalog's names."""
        return {name: getattr(self, name) for name in (*EVIDENCE, "outlier_score")}


def tissue_log_shares(histograms: np.ndarray) -> np.ndarray:
    """(N, 8) log shares of each scan's non-air voxels in the tissue ranges, from (N, 64)
    counts in ``HU_HISTOGRAM_EDGES`` bins. Rows without a non-air voxel give NaN."""
    counts = np.asarray(histograms, dtype=np.float64)
    if counts.ndim != 2 or counts.shape[1] != len(HU_HISTOGRAM_EDGES) - 1:
        raise ValueError(f"histograms must have shape (N, {len(HU_HISTOGRAM_EDGES) - 1}), "
                         f"got {counts.shape}; re-ingest scans stored by an older ctae")
    first = np.searchsorted(HU_HISTOGRAM_EDGES, TISSUE_RANGE_STARTS_HU)
    shares = np.add.reduceat(counts, first, axis=1)  # each range: its first bin to the next's
    with np.errstate(invalid="ignore", divide="ignore"):
        shares = shares / shares.sum(axis=1, keepdims=True)
    return np.log(shares + TISSUE_SHARE_FLOOR)


def size_adjusted_log(values: np.ndarray, pixel_count: np.ndarray, fit_rows: np.ndarray) -> np.ndarray:
    """log(value) minus the log value expected at the scan's pixel count (least-squares line of
    log value on log pixel count over ``fit_rows``). Non-positive values give NaN."""
    values = np.asarray(values, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_v = np.where(values > 0, np.log(values), np.nan)
    log_p = np.log(np.asarray(pixel_count, dtype=np.float64))
    rows = np.asarray(fit_rows, dtype=bool) & np.isfinite(log_v) & np.isfinite(log_p)
    if rows.sum() < MIN_FIT_SCANS or np.ptp(log_p[rows]) == 0:
        return log_v - np.nanmedian(log_v[rows]) if rows.any() else log_v
    slope, intercept = np.polyfit(log_p[rows], log_v[rows], 1)
    return log_v - (slope * log_p + intercept)


def robust_z(values: np.ndarray, reference_rows: np.ndarray) -> np.ndarray:
    """(value − median) / (1.4826 · MAD) over ``reference_rows``' finite values.

    A reference with MAD 0 falls back to its standard deviation, then to 1, so a constant
    reference still yields finite z (a departure from the constant stands out).
    """
    values = np.asarray(values, dtype=np.float64)
    ref = values[np.asarray(reference_rows, dtype=bool)]
    ref = ref[np.isfinite(ref)]
    if ref.size == 0:
        return np.full(values.shape, np.nan)
    centre = float(np.median(ref))
    scale = MAD_TO_STD * float(np.median(np.abs(ref - centre)))
    if not scale > 0:
        scale = float(np.std(ref)) or 1.0
    return (values - centre) / scale


def fisher_combination(z: np.ndarray) -> np.ndarray:
    """Σ over rows of −log P(Z > z) for a standard normal Z; NaN entries are left out, and a
    column with no finite entry gives NaN. ``z`` has shape (K, N)."""
    z = np.atleast_2d(np.asarray(z, dtype=np.float64))
    evidence = -norm.logsf(z)
    total = np.nansum(evidence, axis=0)
    return np.where(np.isfinite(z).any(axis=0), total, np.nan)


def outlier_evidence(
    mse_m: np.ndarray,
    pixel_count: np.ndarray,
    latents: np.ndarray | None,
    histograms: np.ndarray | None,
    fit_rows: np.ndarray,
    calibration_rows: np.ndarray,
) -> OutlierEvidence:
    """The four kinds of evidence and the combined outlier score of N scans of one run.

    Args:
        mse_m: (N,) MSE_m per scan.
        pixel_count: (N,) voxels of each resampled scan.
        latents: (N, D) latent vectors, or None (no latent evidence).
        histograms: (N, B) HU histogram counts in ``HU_HISTOGRAM_EDGES`` bins, or None; rows
            with no voxel above the air bin get NaN.
        fit_rows: (N,) bool, the training split: what "normal" is fitted on.
        calibration_rows: (N,) bool, the validation split: what the z-scores are relative to.
            With fewer than ``MIN_CALIBRATION_SCANS`` finite rows, the fit rows join them.

    Returns:
        OutlierEvidence; every array is NaN when fewer than ``MIN_FIT_SCANS`` fit rows exist.
    """
    mse_m = np.asarray(mse_m, dtype=np.float64)
    n = mse_m.shape[0]
    fit_rows = np.asarray(fit_rows, dtype=bool)
    calibration_rows = np.asarray(calibration_rows, dtype=bool)
    nan = np.full(n, np.nan)
    if fit_rows.sum() < MIN_FIT_SCANS:
        return OutlierEvidence(nan, nan.copy(), nan.copy(), nan.copy(), nan.copy())
    if (calibration_rows & np.isfinite(mse_m)).sum() < MIN_CALIBRATION_SCANS:
        calibration_rows = calibration_rows | fit_rows

    def z_of(raw: np.ndarray) -> np.ndarray:
        return robust_z(raw, calibration_rows)

    mse_m_z = z_of(size_adjusted_log(mse_m, pixel_count, fit_rows))
    latent_z = nan.copy()
    if latents is not None and len(latents):
        latent_z = z_of(np.log(_distance(np.asarray(latents, dtype=np.float64), fit_rows)))
    histogram_z, tissue_z = nan.copy(), nan.copy()
    if histograms is not None and len(histograms):
        counts = np.asarray(histograms, dtype=np.float64)
        usable = counts[:, AIR_BINS:].sum(axis=1) > 0
        if (usable & fit_rows).sum() >= MIN_FIT_SCANS:
            fit_usable = fit_rows[usable]
            distance = np.full(n, np.nan)
            distance[usable] = _distance(histogram_features(counts[usable, AIR_BINS:]), fit_usable)
            histogram_z = z_of(np.log(distance))
            if counts.shape[1] == len(HU_HISTOGRAM_EDGES) - 1:  # else not ctae's bins: left out
                distance = np.full(n, np.nan)
                distance[usable] = _distance(tissue_log_shares(counts[usable]), fit_usable)
                tissue_z = z_of(np.log(distance))
    score = fisher_combination(np.stack([mse_m_z, latent_z, histogram_z, tissue_z]))
    return OutlierEvidence(mse_m_z, latent_z, histogram_z, tissue_z, score)


def _distance(features: np.ndarray, fit_rows: np.ndarray) -> np.ndarray:
    """Squared Mahalanobis distance to the fit rows, floored so its log is finite."""
    return np.maximum(mahalanobis_scores(features, fit_rows), 1e-12)
