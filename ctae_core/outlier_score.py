"""The run's outlier score: nine kinds of evidence that a scan does not belong, each
calibrated against the validation split; the score is the strongest of them, and T applies to
it.

Why not MSE_m alone (measured on the demo cohort, README "Detection quality"): a
reconstruction error only sees what the autoencoder fails to reproduce. Local objects (metal,
leads, cables) are missed by the model and stand out; *global* departures — a wrong rescale
intercept, no contrast, heavy noise, arms beside the body, a patient off the isocentre — look
normal voxel by voxel, are reproduced, and score like inliers. MSE_m also falls with scan size
(thesis Fig. 4.2). So, per scan:

- ``mse_m_z``: log MSE_m relative to the MSE_m expected at the scan's pixel count (a log-log
  line fitted on the training split), which removes the size bias;
- ``latent_z``: Mahalanobis distance of the scan's latent vector from the training scans'
  (the autoencoder's own description of the scan);
- ``histogram_z``: Mahalanobis distance of the scan's HU histogram from the training scans'
  (intensity calibration, metal), over the voxels above the air bin: the share of air is the
  field of view's, not the body's, and made the distance fall with scan size;
- ``tissue_z``: the same for the scan's tissue composition — log shares of its non-air voxels
  in eight HU ranges (lung, lung edge, fat, soft tissue, enhanced tissue, contrast-filled blood
  and cancellous bone, cortical bone, metal);
- ``contrast_z``: how much *less* enhanced tissue (256–704 HU: contrast-filled blood) the scan
  holds among its soft and enhanced tissue (64–704 HU) than usual: a scan without contrast.
  The share itself, not its log: inliers' shares trail off towards low values (contrast
  timing), and a log stretched that tail into false alarms (3 % of the demo's inliers above
  z 3.3 with the log, 0 without, at the same AUROC);
- ``shape_z``: Mahalanobis distance of the body's outline (``ctae_core.acquisition``: extent
  per direction, contact with the image border) from the training scans': arms beside the
  body, a body cut by the field of view, an odd position;
- ``noise_z``: log image noise (``ctae_core.acquisition.noise_estimate``), upper tail;
- ``streak_z``: log SNR of the strongest straight line in the air around the body
  (``ctae_core.acquisition.streak_contrast``): streak artefacts;
- ``integrity_z``: slices the series lacked or repeated (ingest repaired them), as a mid-p
  value against the training and validation scans: a broken series.

Each becomes a z against the validation split (median and 1.4826 · MAD, log scale) and an
upper-tail probability under a normal reference; ``outlier_score = max_i −log P(Z > z_i)``,
the evidence of the most unusual thing about the scan. The maximum rather than Fisher's sum:
they rank about equally (demo cohort, README "Detection quality": 0.950 vs 0.954 on 180
planted outliers, 0.949 vs 0.938 on the demo's 17), but the maximum *is* one kind of evidence — the
viewer names it — and its null quantile is exact for independent evidence (Šidák), so T
means what it says. An unusually *low* value never raises the score.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
from scipy.stats import norm

from ctae_core.evaluation import histogram_features, mahalanobis_scores
from ctae_core.stats import HU_HISTOGRAM_EDGES
from ctae_core.thresholds import MAD_TO_STD

MIN_FIT_SCANS = 5
"""Training-split scans needed to fit the size line and each distance."""
MIN_CALIBRATION_SCANS = 8
"""Validation scans needed to calibrate alone; with fewer, training scans join them."""
EVIDENCE = (
    "mse_m_z", "latent_z", "histogram_z", "tissue_z",
    "contrast_z", "shape_z", "noise_z", "streak_z", "integrity_z",
)
AIR_BINS = 1
"""Leading bins of ``ctae_core.stats.HU_HISTOGRAM_EDGES`` left out of the histogram evidence
(−1024 to −960 HU: air). Keeping them: Spearman ρ with pixel count −0.45 among inliers, −0.22
without, at the same AUROC (demo cohort)."""
TISSUE_RANGE_STARTS_HU = (-960, -576, -192, -64, 128, 256, 512, 1536)
"""Lower edges of the tissue-composition ranges (on ``HU_HISTOGRAM_EDGES`` bin edges); each
range ends where the next starts, the last at the histogram's end."""
TISSUE_SHARE_FLOOR = 1e-4
"""Added to each share before the log, so an empty range (no metal) is finite."""
ENHANCED_HU = (256, 704)
"""Contrast-filled blood (and cancellous bone) in an enhanced CT, on histogram bin edges."""
SOFT_AND_ENHANCED_HU = (64, 704)
"""What the enhanced share is taken of: soft tissue above water and everything enhanced."""


@dataclass(frozen=True)
class AcquisitionInputs:
    """Per-scan measurements of how each scan was acquired (``scans`` columns), NaN where a
    scan lacks one.

    Attributes:
        noise_hu: (N,) image noise SD.
        body_shape: (N, P + 1) body outline profile followed by the body's border contact (mm).
        streak_contrast: (N,) SNR of the strongest straight line in air.
        series_defects: (N,) slices missing plus slices duplicated in the series.
    """

    noise_hu: np.ndarray
    body_shape: np.ndarray
    streak_contrast: np.ndarray
    series_defects: np.ndarray


@dataclass(frozen=True)
class OutlierEvidence:
    """Per-scan evidence (N,) arrays; NaN where a scan lacks the input (e.g. no histogram)."""

    mse_m_z: np.ndarray
    latent_z: np.ndarray
    histogram_z: np.ndarray
    tissue_z: np.ndarray
    contrast_z: np.ndarray
    shape_z: np.ndarray
    noise_z: np.ndarray
    streak_z: np.ndarray
    integrity_z: np.ndarray
    outlier_score: np.ndarray

    @classmethod
    def missing(cls, n: int) -> OutlierEvidence:
        """Every value NaN: nothing could be fitted."""
        return cls(*(np.full(n, np.nan) for _ in fields(cls)))

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


def enhanced_share(histograms: np.ndarray) -> np.ndarray:
    """(N,) share of each scan's ``SOFT_AND_ENHANCED_HU`` voxels that lie in ``ENHANCED_HU``,
    from (N, 64) counts in ``HU_HISTOGRAM_EDGES`` bins; NaN for a scan with no such voxel."""
    counts = np.asarray(histograms, dtype=np.float64)
    lower = HU_HISTOGRAM_EDGES[:-1]

    def total(hu_range: tuple[int, int]) -> np.ndarray:
        return counts[:, (lower >= hu_range[0]) & (lower < hu_range[1])].sum(axis=1)

    reference = total(SOFT_AND_ENHANCED_HU)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(reference > 0, total(ENHANCED_HU) / reference, np.nan)


def mid_p_z(values: np.ndarray, reference_rows: np.ndarray) -> np.ndarray:
    """z of each value's upper-tail mid-p value among the reference rows' values, for counts
    (a repaired slice) where a MAD is 0: p = (#greater + ½·#equal + ½) / (n + 1). A value no
    reference scan reaches gets p = ½ / (n + 1); the reference's common value z ≈ 0."""
    values = np.asarray(values, dtype=np.float64)
    ref = values[np.asarray(reference_rows, dtype=bool)]
    ref = np.sort(ref[np.isfinite(ref)])
    if ref.size == 0:
        return np.full(values.shape, np.nan)
    greater = ref.size - np.searchsorted(ref, values, side="right")
    equal = np.searchsorted(ref, values, side="right") - np.searchsorted(ref, values, side="left")
    p = (greater + 0.5 * equal + 0.5) / (ref.size + 1)
    return np.where(np.isfinite(values), norm.isf(p), np.nan)


def strongest_evidence(z: np.ndarray) -> np.ndarray:
    """Max over rows of −log P(Z > z) for a standard normal Z; NaN entries are left out, and a
    column with no finite entry gives NaN. ``z`` has shape (K, N)."""
    z = np.atleast_2d(np.asarray(z, dtype=np.float64))
    evidence = np.where(np.isfinite(z), -norm.logsf(z), -np.inf)
    best = evidence.max(axis=0)
    return np.where(np.isfinite(z).any(axis=0), best, np.nan)


def outlier_evidence(
    mse_m: np.ndarray,
    pixel_count: np.ndarray,
    latents: np.ndarray | None,
    histograms: np.ndarray | None,
    fit_rows: np.ndarray,
    calibration_rows: np.ndarray,
    acquisition: AcquisitionInputs | None = None,
) -> OutlierEvidence:
    """The nine kinds of evidence and the outlier score of N scans of one run.

    Args:
        mse_m: (N,) MSE_m per scan.
        pixel_count: (N,) voxels of each resampled scan.
        latents: (N, D) latent vectors, or None (no latent evidence).
        histograms: (N, B) HU histogram counts in ``HU_HISTOGRAM_EDGES`` bins, or None; rows
            with no voxel above the air bin get NaN.
        fit_rows: (N,) bool, the training split: what "normal" is fitted on.
        calibration_rows: (N,) bool, the validation split: what the z-scores are relative to.
            With fewer than ``MIN_CALIBRATION_SCANS`` finite rows, the fit rows join them.
        acquisition: Noise, body outline, streaks and series defects per scan, or None (no
            shape, noise, streak or integrity evidence).

    Returns:
        OutlierEvidence; every array is NaN when fewer than ``MIN_FIT_SCANS`` fit rows exist.
    """
    mse_m = np.asarray(mse_m, dtype=np.float64)
    n = mse_m.shape[0]
    fit_rows = np.asarray(fit_rows, dtype=bool)
    calibration_rows = np.asarray(calibration_rows, dtype=bool)
    if fit_rows.sum() < MIN_FIT_SCANS:
        return OutlierEvidence.missing(n)
    if (calibration_rows & np.isfinite(mse_m)).sum() < MIN_CALIBRATION_SCANS:
        calibration_rows = calibration_rows | fit_rows

    def z_of(raw: np.ndarray) -> np.ndarray:
        return robust_z(raw, calibration_rows)

    def distance_z(features: np.ndarray | None) -> np.ndarray:
        """z of the log Mahalanobis distance to the fit rows; rows with a NaN feature: NaN."""
        out = np.full(n, np.nan)
        if features is None or len(features) == 0:
            return out
        features = np.asarray(features, dtype=np.float64)
        usable = np.isfinite(features).all(axis=1)
        if (usable & fit_rows).sum() < MIN_FIT_SCANS:
            return out
        out[usable] = np.log(_distance(features[usable], fit_rows[usable]))
        return z_of(out)

    evidence = dict.fromkeys(EVIDENCE, np.full(n, np.nan))
    evidence["mse_m_z"] = z_of(size_adjusted_log(mse_m, pixel_count, fit_rows))
    evidence["latent_z"] = distance_z(latents)
    if histograms is not None and len(histograms):
        counts = np.asarray(histograms, dtype=np.float64)
        above_air = counts[:, AIR_BINS:]
        with np.errstate(invalid="ignore", divide="ignore"):
            above_air = np.where(above_air.sum(axis=1, keepdims=True) > 0, above_air, np.nan)
        evidence["histogram_z"] = distance_z(_histogram_features(above_air))
        if counts.shape[1] == len(HU_HISTOGRAM_EDGES) - 1:  # else not ctae's bins: left out
            evidence["tissue_z"] = distance_z(tissue_log_shares(counts))
            evidence["contrast_z"] = z_of(-enhanced_share(counts))
    if acquisition is not None:
        with np.errstate(invalid="ignore", divide="ignore"):
            evidence["noise_z"] = z_of(np.log(np.asarray(acquisition.noise_hu, dtype=np.float64)))
            evidence["streak_z"] = z_of(
                np.log(np.asarray(acquisition.streak_contrast, dtype=np.float64)))
        evidence["shape_z"] = distance_z(acquisition.body_shape)
        evidence["integrity_z"] = mid_p_z(acquisition.series_defects, fit_rows | calibration_rows)
    score = strongest_evidence(np.stack([evidence[name] for name in EVIDENCE]))
    return OutlierEvidence(**evidence, outlier_score=score)


def _histogram_features(counts: np.ndarray) -> np.ndarray:
    """``histogram_features`` of the rows without NaN; NaN rows stay NaN."""
    out = np.full(counts.shape, np.nan)
    usable = np.isfinite(counts).all(axis=1)
    if usable.any():
        out[usable] = histogram_features(counts[usable])
    return out


def _distance(features: np.ndarray, fit_rows: np.ndarray) -> np.ndarray:
    """Squared Mahalanobis distance to the fit rows, floored so its log is finite."""
    return np.maximum(mahalanobis_scores(features, fit_rows), 1e-12)
