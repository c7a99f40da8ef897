"""The run's outlier score: kinds of evidence that a scan does not belong, each calibrated
against the run's scans acquired alike; the score combines them (``SCORED_EVIDENCE``: the
strongest kind, or the three strongest together, ``ctae_core.combined_evidence``), and T
applies to it.

Why not MSE_m alone: a reconstruction error only sees what the autoencoder fails to reproduce.
Local objects (metal, leads, cables) are missed by the model and stand out; *global* departures
— a wrong rescale intercept, no contrast, heavy noise, arms beside the body, a patient off the
isocentre — look normal voxel by voxel, are reproduced, and score like inliers. MSE_m also falls
with scan size (thesis Fig. 4.2). So, per scan:

- ``mse_m_z`` (measured, not scored: ``ctae_core.evidence_kinds.UNSCORED_EVIDENCE``): log MSE_m
  relative to the MSE_m expected at the scan's pixel count (a robust log-log line), which removes
  the size bias;
- ``latent_z``: Mahalanobis distance of the scan's latent vector from the other scans';
- ``histogram_z``: the same for the HU histogram above the air bin (the share of air is the
  field of view's, not the body's), on the square roots of its fractions (each bin's noise
  alike);
- ``tissue_z``: the same for the tissue composition — log shares of the non-air voxels in
  eight HU ranges (lung, lung edge, fat, soft tissue, enhanced tissue, contrast-filled blood and
  cancellous bone, cortical bone, metal) — measured from the scan's acquisition group's centre
  (``GROUP_CENTRED_EVIDENCE``);
- ``contrast_z``: how much *less* enhanced tissue (128–704 HU: blood and organs enhanced by
  contrast, arterial or portal-venous) the scan holds among its soft and enhanced tissue
  (64–704 HU) than usual: a scan without contrast (the share, not its log, whose stretched
  lower tail gave false alarms);
- ``shape_z``: Mahalanobis distance of the body's outline (``ctae_core.acquisition``) from the
  other scans': arms beside the body, a body cut by the field of view, an odd position;
- ``fov_z``: how much of the body lies on the edge of the reconstructed field, next to the
  padding outside the scanner's reconstruction circle (``ctae_core.acquisition``
  ``field_edge_mm``): a patient beyond the scanned field. Under the hurdle null of the dense
  objects below (none on most scans, a heavy-tailed amount on a few), among scans acquired
  alike: a protocol whose reconstruction circle routinely cuts its patients' flanks (the
  TotalSegmentator DICOM abdomen's own field does) makes such a cut usual there. The outline's
  own ``shape_z`` reads the image border, where a body cut by a small display field is usual
  for some protocols;
- ``noise_z``: log image noise, upper tail, under ``NOISE_NULL_DF`` (a kernel's own noise is a
  floor that a lower dose adds to: an upward-skewed tail). Since v17 the noise measured at
  ingest on the acquired grid (``ctae_core.noise.native_noise_estimate``), relative to a line on
  the log pixel spacing (``size_adjusted_log``: a difference of neighbours reads more of the
  noise the less two pixels share — the real-anatomy inliers' slope is +0.3 to +0.5); the
  stored 3 mm volume's (``noise_estimate``) while a scan of the run lacks it;
- ``streak_z``: log SNR of the strongest straight line through the body's soft tissue
  (``ctae_core.acquisition.streak_contrast``), under a heavier null than one number's
  (``STREAK_NULL_DF``: a maximum over many lines and planes);
- ``integrity_z``: slices the series lacked or repeated (ingest repaired them), under a
  Poisson null at the reference's rate of such defects (its most broken series left out): a
  broken series;
- ``ring_z``: log ring contrast (``ctae_core.acquisition.ring_contrast``: one radius about the
  image centre brighter or darker all the way round), under the one-number null (until v15 it
  took the distances' heavier one: radii that crossed only a wide body's flanks gave real
  inliers a heavy tail; read all the way round, its real inliers pass the lighter null's
  nominal 1 / 0.3 / 0.1 % no more often than that).
- ``metal_z``: mm³ of compact metal away from bone, measured at ingest on the acquired grid
  (``ctae_core.native_metal``: a 1–3 mm snap or valve ring is averaged into bone-like HU at
  3 mm), under a hurdle null (``ctae_core.calibration.hurdle_z``: none at all on most smooth
  kernels' scans, a heavy-tailed amount on a sharp kernel's); NaN for a scan ingested before
  schema v10 (re-ingesting measures it).
- ``skin_object_z`` / ``inner_object_z``: mm³ of dense voxels (≥ 1000 HU) away from bone on
  or outside the skin (electrodes, leads, cables: where a real scan holds nothing dense) and
  inside the body (a valve ring, a clip), measured at ingest on the acquired grid by the same
  pass (``ctae_core.native_metal.native_density``), under the same hurdle null; NaN for a scan
  ingested before schema v11.
- ``long_object_z``: the longest connected dense object away from bone (the longest side of
  its box, mm; same pass), under the same hurdle null: a cable, a lead or a wire runs for tens
  of centimetres where a partial-volumed snap, a clip or a sharp kernel's overshoot spans a few;
  NaN for a scan ingested before schema v12.
- ``local_error_z`` (scored since stop 37): log peak of the anomaly map
  (``ctae_core.anomaly_map``) for the scan's size: one object the model did not reproduce,
  however large the scan. Since schema v19 the peak inside the patient and the peak in the
  body's outer shell each so, among their own region's peaks, the larger Šidák-corrected for
  two (``local_error_evidence``, ``ctae_core.error_regions``): a lead that patients of one
  archive wear on the skin no longer hides a valve inside one of them.

Reference: every scored scan of the run (``reference_rows``), not a small validation split, so
the reference is large; it is uncurated, so every fit is robust to a share of outliers in it
(trimmed, cross-fitted distances in ``ctae_core.distances``; a Theil–Sen size line; medians and
quantiles). Each value becomes an equivalent-normal z under an empirical null
(``ctae_core.calibration``), taken among the scans **acquired alike** (same manufacturer and
kernel) where enough of them exist: a sharp lung kernel is noisy, and that is no outlier.
``outlier_score``: over ``SCORED_EVIDENCE``, how unlikely an inlier is to show the scan's
strongest kind (−log P(Z > z_i), Šidák for the fifteen kinds) or its three strongest together
(the exact null of their sum), on the scale of one kind's −log p
(``ctae_core.combined_evidence``); the viewer names the strongest kind. An unusually *low* value never raises it. How the kinds were chosen and
what they measure on the real-anatomy and phantom cohorts: README "Detection quality".
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, fields

import numpy as np
from scipy.stats import median_abs_deviation, norm, theilslopes

from ctae_core.calibration import (
    DISTANCE_NULL_DF,
    MIN_GROUP_SCANS,
    NULL_DF,
    OUTLIER_SHARE,
    TRIM_MIN_SCANS,
    group_centred,
    hurdle_z,
    null_z,
)
from ctae_core.combined_evidence import combined_score
from ctae_core.distances import histogram_features, reference_distance
from ctae_core.evidence_kinds import EVIDENCE, SCORED_EVIDENCE
from ctae_core.stats import HU_HISTOGRAM_EDGES

MIN_FIT_SCANS = 5
"""Reference scans needed to fit the size line and each distance."""
SIZE_LINED_EVIDENCE = ("latent_z", "histogram_z", "ring_z", "tissue_z", "shape_z")
"""Kinds whose log measure is taken relative to the value expected at the scan's pixel count
(``size_adjusted_log``, as MSE_m's): among real inliers they followed scan size (Spearman ρ
−0.11…−0.31, +0.19…+0.31, −0.23…−0.26 on five development seeds) — a small scan's latent is
mostly padding, its histogram covers less anatomy, its ring is a median over fewer planes.
``tissue_z`` and ``shape_z`` since stop 62: within each real base of ten seeds, a smaller copy's
tissue shares and outline lay further from its group's centre (Spearman ρ −0.39 and −0.32 on
the mean, negative on all ten); the line is fitted within acquisition groups, so a wrong body
region or a cut field of view still stands out against scans of its own size."""
GROUP_CENTRED_EVIDENCE = ("tissue_z",)
"""Distances measured from the scan's own acquisition group's centre (``group_centred``) rather
than the cohort's. The tissue composition (how much lung, fat, soft tissue, bone) is the body
region's more than the scanner's: an abdomen archived without kernel facts among chest scans
lies far from the cohort's centre, how far varying with its contrast phase, so its copies'
log distances spread wider than any chest group's, and their upper half passed T with the
histogram and the patient's own clip (stop 26's seeds 119 and 123, stop 27's 133). On the
fourteen development seeds of stop 29 it raised the mean AUROC 0.9545 → 0.9561 and held every
seed's inliers flagged at T to ≤ 0.8 % (119: 2.5 %, 125: 1.7 % before); centring the histogram
as well lowered the mean AUROC (0.9530: seed 123 0.923 → 0.898, its electrodes and a truncated
field of view on a Philips kernel read nearer their group)."""
STREAK_NULL_DF = 6.0
"""The streak evidence's null: a t with 6 degrees of freedom, between the distances' t₄ and the
one-number t₁₀. The streak measure is a maximum over many lines and planes, heavier-tailed
than one number; since v15 (planes with both neighbours only) the fourteen development seeds'
1,666 real inliers passed t₆'s nominal 1 / 0.3 / 0.1 % 0.96 / 0.24 / 0 % of the time (t₄:
0.60 / 0 / 0 %, t₈ on six seeds 1.26 / 0.70 / 0.28 %), and t₆ raised the mean recall at T
0.632 → 0.653."""
NOISE_NULL_DF = 6.0
"""The noise evidence's null (since v16; t₁₀ before): among real inliers the log noise of one
acquisition group is skewed upwards — a kernel's own noise is its floor, a lower dose adds to
it — so its upper tail is longer than its lower half (from which the null's scale comes) says.
With the continuous noise measure of v16, the inliers of 32 real-anatomy seeds (stop 29's
fourteen development seeds and seeds 143–160) passed t₁₀'s nominal 1 / 0.3 / 0.1 % 2.0 / 0.5 /
0.2 % (fourteen) and 3.2 / 1.2 / 0.5 % (eighteen) of the time, t₆'s 1.1 / 0.2 / 0 % and 2.3 /
0.5 / 0.05 %; t₆ raised the mean AUROC 0.9569 → 0.9574 and 0.9474 → 0.9486 and lowered the
mean recall at T 0.661 → 0.650 and 0.658 → 0.655."""
RING_NULL_DF = NULL_DF
"""The ring evidence's null: the one-number t (since v15). Read only at radii that reach three
quarters of the way round (``ctae_core.acquisition.RING_MIN_SECTORS``), the rings of the six
real-anatomy development seeds' 714 inliers passed its nominal 1 / 0.3 / 0.1 % 0.56 / 0.14 / 0 %
of the time; until v15 radii through a wide body's flanks alone gave them the heavy tail that
the distances' t₄ (``DISTANCE_NULL_DF``) was there for."""
AIR_BINS = 1
"""Leading bins of ``ctae_core.stats.HU_HISTOGRAM_EDGES`` left out of the histogram evidence
(−1024 to −960 HU: air, whose share is the field of view's and follows scan size)."""
TISSUE_RANGE_STARTS_HU = (-960, -576, -192, -64, 128, 256, 512, 1536)
"""Lower edges of the tissue-composition ranges (on ``HU_HISTOGRAM_EDGES`` bin edges); each
range ends where the next starts, the last at the histogram's end."""
TISSUE_SHARE_FLOOR = 1e-4
"""Added to each share before the log, so an empty range (no metal) is finite."""
ENHANCED_HU = (128, 704)
"""Blood and organs enhanced by contrast (and cancellous bone), on histogram bin edges: from
128 HU, so the portal-venous phase of a chest or abdomen archive counts (blood 130–200 HU,
enhanced liver and spleen 100–150 HU; unenhanced blood and soft tissue 30–70 HU), not only a
CCTA's arterial phase (blood 256–700 HU, the thesis's cohort; the range began at 256 HU until
stop 26, and a venous-phase scan without contrast then lost little of its share)."""
SOFT_AND_ENHANCED_HU = (64, 704)
"""What the enhanced share is taken of: soft tissue above water and everything enhanced."""


@dataclass(frozen=True)
class AcquisitionInputs:
    """Per-scan measurements of how each scan was acquired (``scans`` columns), NaN where a
    scan lacks one.

    Attributes:
        noise_hu: (N,) image noise SD.
        body_shape: (N, P + 1) body outline profile followed by the body's border contact (mm).
        streak_contrast: (N,) SNR of the strongest straight line through the body.
        series_defects: (N,) slices missing plus slices duplicated in the series.
        ring_contrast: (N,) ring strength about the image centre, or None (not measured).
        native_metal_mm3: (N,) compact metal away from bone on the acquired grid
            (``ctae_core.native_metal``), or None; NaN: ingested before it was measured.
        skin_object_mm3: (N,) dense objects away from bone on or outside the skin, or None.
        inner_object_mm3: (N,) dense objects away from bone inside the body, or None.
        longest_object_mm: (N,) the longest side of the longest of those objects, or None.
        noise_pixel_mm: (N,) the pixel spacing of the grid ``noise_hu`` was measured on (the
            acquired grid's, ``scans.native_noise_hu``), or None: the stored grid, alike for all.
        field_edge_mm: (N,) body on the reconstructed field's edge (next to padding outside the
            reconstruction circle, mm per plane), or None.
    """

    noise_hu: np.ndarray
    body_shape: np.ndarray
    streak_contrast: np.ndarray
    series_defects: np.ndarray
    ring_contrast: np.ndarray | None = None
    native_metal_mm3: np.ndarray | None = None
    skin_object_mm3: np.ndarray | None = None
    inner_object_mm3: np.ndarray | None = None
    longest_object_mm: np.ndarray | None = None
    noise_pixel_mm: np.ndarray | None = None
    field_edge_mm: np.ndarray | None = None


@dataclass(frozen=True)
class OutlierEvidence:
    """Per-scan evidence (N,) arrays; NaN where a scan lacks the input (e.g. no histogram)."""

    mse_m_z: np.ndarray
    latent_z: np.ndarray
    histogram_z: np.ndarray
    tissue_z: np.ndarray
    contrast_z: np.ndarray
    shape_z: np.ndarray
    fov_z: np.ndarray
    noise_z: np.ndarray
    streak_z: np.ndarray
    integrity_z: np.ndarray
    ring_z: np.ndarray
    metal_z: np.ndarray
    skin_object_z: np.ndarray
    inner_object_z: np.ndarray
    long_object_z: np.ndarray
    local_error_z: np.ndarray
    outlier_score: np.ndarray
    local_error_interior_z: np.ndarray
    """The interior's peak's z (``local_error_region_z``; NaN without the two regions): with
    ``local_error_shell_z`` it says where the local error lies, for the viewer and for placing
    the hottest region (stop 46)."""
    local_error_shell_z: np.ndarray

    @classmethod
    def missing(cls, n: int) -> OutlierEvidence:
        """Every value NaN: nothing could be fitted."""
        return cls(*(np.full(n, np.nan) for _ in fields(cls)))

    def as_columns(self) -> dict[str, np.ndarray]:
        """Column name → values, in the catalog's names."""
        return {name: getattr(self, name) for name in (*EVIDENCE, "outlier_score", *LOCAL_ERROR_REGIONS)}


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


def size_adjusted_log(values: np.ndarray, pixel_count: np.ndarray, fit_rows: np.ndarray,
                      groups: np.ndarray | None = None) -> np.ndarray:
    """log(value) minus the log value expected at the scan's pixel count: a Theil–Sen line of
    log value on log pixel count over ``fit_rows`` (a few outliers among them do not tilt it).
    With ``groups`` (acquisition group per scan, None: unknown), the slope is fitted within
    groups — both logs centred on their group's median — so that a kernel that happens to come
    with larger scans does not pass for an effect of size. Non-positive values give NaN."""
    values = np.asarray(values, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_v = np.where(values > 0, np.log(values), np.nan)
    log_p = np.log(np.asarray(pixel_count, dtype=np.float64))
    rows = np.asarray(fit_rows, dtype=bool) & np.isfinite(log_v) & np.isfinite(log_p)
    if rows.sum() < MIN_FIT_SCANS or np.ptp(log_p[rows]) == 0:
        return log_v - np.nanmedian(log_v[rows]) if rows.any() else log_v
    fit_v, fit_p = log_v.copy(), log_p.copy()
    if groups is not None:
        keys = np.asarray([None if g is None or g != g else g for g in groups], dtype=object)
        for key in set(keys.tolist()):
            members = (keys == key) if key is not None else np.array([k is None for k in keys])
            if (members & rows).sum() >= 2:
                fit_v[members] -= np.median(log_v[members & rows])
                fit_p[members] -= np.median(log_p[members & rows])
    if np.ptp(fit_p[rows]) == 0:
        return log_v - np.median(log_v[rows])
    with np.errstate(invalid="ignore"):  # only the slope is used: its confidence interval takes
        slope = theilslopes(fit_v[rows], fit_p[rows])[0]  # a sqrt that heavy ties make negative
    residual = log_v - slope * log_p
    return residual - np.median(residual[rows])


def robust_z(values: np.ndarray, reference_rows: np.ndarray) -> np.ndarray:
    """(value − median) / (MAD scaled to a normal SD) over ``reference_rows``' finite values.

    A reference with MAD 0 falls back to its standard deviation, then to 1, so a constant
    reference still yields finite z (a departure from the constant stands out).
    """
    values = np.asarray(values, dtype=np.float64)
    ref = values[np.asarray(reference_rows, dtype=bool)]
    ref = ref[np.isfinite(ref)]
    if ref.size == 0:
        return np.full(values.shape, np.nan)
    centre = float(np.median(ref))
    scale = float(median_abs_deviation(ref, scale="normal"))
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


def defect_z(values: np.ndarray, reference_rows: np.ndarray) -> np.ndarray:
    """z of each count of series defects (slices missing or repeated) under a Poisson null whose
    rate is the reference's (with half a defect of prior, so a reference without any still
    allows them): mid-p P(X > k) + ½·P(X = k). Defects are rare and independent events, so a
    second one in the same series is far rarer than the first; an empirical rank could never
    reach p < 0.001 among fewer than 500 reference scans.

    The rate leaves out the defects of the reference's ``OUTLIER_SHARE`` most broken series (in
    a reference of ``TRIM_MIN_SCANS`` or more), as the hurdle's share leaves out its positives:
    the reference is uncurated, and the broken series it holds must not teach it that breaks are
    usual (two benchmark series missing one and two slices among 140 clean ones raised the rate
    twentyfold and held a single missing slice to z 2.2–2.6). Where more than that share of the
    series have defects, the rest still set the rate."""
    values = np.asarray(values, dtype=np.float64)
    ref = values[np.asarray(reference_rows, dtype=bool)]
    ref = np.sort(ref[np.isfinite(ref)])
    if ref.size == 0:
        return np.full(values.shape, np.nan)
    kept = ref[: ref.size - int(OUTLIER_SHARE * ref.size)] if ref.size >= TRIM_MIN_SCANS else ref
    return defect_z_at_rate(values, (kept.sum() + 0.5) / (ref.size + 1))


def defect_z_at_rate(values: np.ndarray, rate: float) -> np.ndarray:
    """z of each count of series defects under a Poisson null of ``rate`` defects per series:
    mid-p P(X > k) + ½·P(X = k); NaN counts stay NaN."""
    from scipy.stats import poisson

    values = np.asarray(values, dtype=np.float64)
    k = np.where(np.isfinite(values), values, 0)
    p = poisson.sf(k, rate) + 0.5 * poisson.pmf(k, rate)
    return np.where(np.isfinite(values), norm.isf(np.maximum(p, 1e-300)), np.nan)


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
    reference_rows: np.ndarray,
    acquisition: AcquisitionInputs | None = None,
    groups: np.ndarray | None = None,
    local_error: np.ndarray | None = None,
    local_error_regions: tuple[np.ndarray, np.ndarray] | None = None,
) -> OutlierEvidence:
    """The kinds of evidence and the outlier score of N scans of one run.

    Args:
        mse_m: (N,) MSE_m per scan.
        pixel_count: (N,) voxels of each resampled scan.
        latents: (N, D) latent vectors, or None (no latent evidence).
        histograms: (N, B) HU histogram counts in ``HU_HISTOGRAM_EDGES`` bins, or None; rows
            with no voxel above the air bin get NaN.
        reference_rows: (N,) bool, the scans "normal" is fitted on and calibrated against:
            every scored scan of the run (uncurated; the fits are robust to outliers in it).
        acquisition: Noise, body outline, streaks, series defects, rings and metal per scan, or
            None (no shape, noise, streak, integrity, ring or metal evidence).
        groups: (N,) acquisition group per scan (``acquisition_groups``; None: unknown), or
            None: every scan is calibrated against all reference scans.
        local_error: (N,) peak of each scan's anomaly map (``ctae_core.anomaly_map``), or None.
        local_error_regions: (interior, shell) peaks of the same maps (``ctae_core.error_regions``),
            each (N,), or None: the local error is then read from ``local_error`` alone.

    Returns:
        OutlierEvidence; every array is NaN when fewer than ``MIN_FIT_SCANS`` reference rows
        exist.
    """
    mse_m = np.asarray(mse_m, dtype=np.float64)
    n = mse_m.shape[0]
    reference_rows = np.asarray(reference_rows, dtype=bool)
    if reference_rows.sum() < MIN_FIT_SCANS:
        return OutlierEvidence.missing(n)

    def z_of(raw: np.ndarray, df: float | None = None) -> np.ndarray:
        return null_z(raw, reference_rows, groups, df=df)

    def sized(name: str, log_values: np.ndarray) -> np.ndarray:
        """The log measure of kind ``name``, relative to its size line where it has one."""
        if name not in SIZE_LINED_EVIDENCE:
            return log_values
        return size_adjusted_log(np.exp(log_values), pixel_count, reference_rows, groups)

    def distance_z(features: np.ndarray | None, name: str) -> np.ndarray:
        """z of the log Mahalanobis distance to the reference; rows with a NaN feature: NaN."""
        out = np.full(n, np.nan)
        if features is None or len(features) == 0:
            return out
        features = np.asarray(features, dtype=np.float64)
        usable = np.isfinite(features).all(axis=1)
        if (usable & reference_rows).sum() < MIN_FIT_SCANS:
            return out
        if groups is not None and name in GROUP_CENTRED_EVIDENCE:
            features = group_centred(features, reference_rows, groups)
        out[usable] = np.log(np.maximum(reference_distance(features[usable], reference_rows[usable]), 1e-12))
        return z_of(sized(name, out), DISTANCE_NULL_DF)

    evidence = dict.fromkeys(EVIDENCE, np.full(n, np.nan))
    evidence["mse_m_z"] = z_of(size_adjusted_log(mse_m, pixel_count, reference_rows, groups))
    evidence["latent_z"] = distance_z(latents, "latent_z")
    if histograms is not None and len(histograms):
        counts = np.asarray(histograms, dtype=np.float64)
        above_air = counts[:, AIR_BINS:]
        with np.errstate(invalid="ignore", divide="ignore"):
            above_air = np.where(above_air.sum(axis=1, keepdims=True) > 0, above_air, np.nan)
        evidence["histogram_z"] = distance_z(_histogram_features(above_air), "histogram_z")
        if counts.shape[1] == len(HU_HISTOGRAM_EDGES) - 1:  # else not ctae's bins: left out
            evidence["tissue_z"] = distance_z(tissue_log_shares(counts), "tissue_z")
            evidence["contrast_z"] = z_of(-enhanced_share(counts))
    if acquisition is not None:
        with np.errstate(invalid="ignore", divide="ignore"):
            noise = np.asarray(acquisition.noise_hu, dtype=np.float64)
            if acquisition.noise_pixel_mm is None:
                evidence["noise_z"] = z_of(np.log(noise), NOISE_NULL_DF)
            else:  # a difference of neighbours reads more of the noise the less two pixels share
                evidence["noise_z"] = z_of(size_adjusted_log(
                    noise, acquisition.noise_pixel_mm, reference_rows, groups), NOISE_NULL_DF)
            evidence["streak_z"] = z_of(
                np.log(np.asarray(acquisition.streak_contrast, dtype=np.float64)), STREAK_NULL_DF)
        evidence["shape_z"] = distance_z(acquisition.body_shape, "shape_z")
        evidence["integrity_z"] = defect_z(acquisition.series_defects, reference_rows)
        if acquisition.ring_contrast is not None:
            with np.errstate(invalid="ignore", divide="ignore"):
                ring = np.log(np.asarray(acquisition.ring_contrast, dtype=np.float64))
            evidence["ring_z"] = z_of(sized("ring_z", ring), RING_NULL_DF)
        if acquisition.field_edge_mm is not None:
            evidence["fov_z"] = hurdle_z(acquisition.field_edge_mm, reference_rows, groups)
        for name, measure in (("metal_z", acquisition.native_metal_mm3),  # mm³, and one length
                              ("skin_object_z", acquisition.skin_object_mm3),
                              ("inner_object_z", acquisition.inner_object_mm3),
                              ("long_object_z", acquisition.longest_object_mm)):
            if measure is not None:
                evidence[name] = hurdle_z(measure, reference_rows, groups)
    region_z = np.full((2, n), np.nan)
    if local_error is not None and local_error_regions is not None:
        region_z = local_error_region_z(local_error_regions, pixel_count, reference_rows, groups)
        evidence["local_error_z"] = _either_region(region_z)
    elif local_error is not None:
        evidence["local_error_z"] = local_error_evidence(local_error, None, pixel_count, reference_rows, groups)
    score = combined_score(np.stack([evidence[name] for name in SCORED_EVIDENCE]))
    return OutlierEvidence(**evidence, outlier_score=score, local_error_interior_z=region_z[0],
                           local_error_shell_z=region_z[1])


LOCAL_ERROR_REGIONS = ("local_error_interior_z", "local_error_shell_z")
"""Stored beside the evidence: each region's z of the local error (``OutlierEvidence``)."""


def local_error_evidence(local_error: np.ndarray, regions: tuple[np.ndarray, np.ndarray] | None,
                         pixel_count: np.ndarray, reference_rows: np.ndarray,
                         groups: np.ndarray | None = None) -> np.ndarray:
    """``local_error_z``: the map's peak for the scan's size (``size_adjusted_log``) among scans
    acquired alike; with ``regions`` (the interior and shell peaks, ``ctae_core.error_regions``)
    each region's peak so (``local_error_region_z``), the larger z taken with Šidák's correction
    for two (an inlier's larger of two is twice as often past a z), so the kind keeps one kind's
    null."""
    if regions is None:
        return _peak_z(np.asarray(local_error, dtype=np.float64), pixel_count, reference_rows, groups)
    return _either_region(local_error_region_z(regions, pixel_count, reference_rows, groups))


def _either_region(z: np.ndarray) -> np.ndarray:
    """The larger of the (2, N) region z, Šidák-corrected for two."""
    with np.errstate(invalid="ignore"):
        stronger = np.max(z, axis=0)
        p_either = -np.expm1(z.shape[0] * np.log1p(-norm.sf(stronger)))
        return np.where(np.isfinite(stronger), norm.isf(np.maximum(p_either, 1e-300)), np.nan)


def local_error_region_z(regions: tuple[np.ndarray, np.ndarray], pixel_count: np.ndarray,
                         reference_rows: np.ndarray, groups: np.ndarray | None = None) -> np.ndarray:
    """(2, N): the interior's and the shell's peak, each for the scan's size among its own
    region's peaks acquired alike. A peak below 1 HU reads 1 HU (a region the map leaves dark,
    or a scan without one). Where the second row is the larger, the scan's local error lies in
    its outer shell, and `ctae score` puts its hottest region there."""
    return np.stack([_peak_z(np.maximum(np.asarray(r, dtype=np.float64), 1.0), pixel_count, reference_rows, groups)
                     for r in regions])


def _peak_z(peak: np.ndarray, pixel_count: np.ndarray, reference_rows: np.ndarray,
            groups: np.ndarray | None) -> np.ndarray:
    return null_z(size_adjusted_log(peak, pixel_count, reference_rows, groups), reference_rows, groups)


SHORT_COVERAGE_MM = 150.0
"""An acquired scan length below this is a short slab (a limited range, one organ) rather than
a whole chest or abdomen (250–450 mm). A slab holds another mix of anatomy, and the histogram,
tissue and contrast evidence compare mixes of anatomy: among the real-anatomy development
inliers the TotalSegmentator abdomen's 90 mm slab, calibrated with the whole abdomen (neither
has a kernel in its header), read as unusual in its contrast share and the whole one in its
tissues (median −log p 2.7–3.8 against 1.6–2.7 for every other base), which made small scans
score higher. Any cut between 120 and 200 mm split those cohorts alike."""


def acquisition_groups(manufacturer: np.ndarray, kernel: np.ndarray,
                       model: np.ndarray | None = None,
                       coverage_mm: np.ndarray | None = None) -> np.ndarray:
    """(N,) group key per scan, ``manufacturer|kernel|model`` (case and spaces ignored), None
    where the kernel is unknown (e.g. a NIfTI file: no acquisition facts). A kernel's name means
    something only on its scanner model (Philips "B" on a Brilliance 16 and on a Big Bore
    differ in noise by a third), so scans of a model with fewer than ``MIN_GROUP_SCANS`` scans
    of that kernel share the group of the kernel across models, ``manufacturer|kernel``.
    ``coverage_mm`` (the acquired scan length): a group's short slabs (``SHORT_COVERAGE_MM``)
    form a group of their own, ``…|short`` (``unknown|short`` where the kernel is unknown),
    where at least ``MIN_GROUP_SCANS`` of them share it."""
    models = [None] * len(kernel) if model is None else list(model)
    coarse, fine = [], []
    for m, k, scanner in zip(manufacturer, kernel, models, strict=True):
        known = isinstance(k, str) and k.strip()
        key = f"{_fact(m)}|{k.strip().lower()}" if known else None
        coarse.append(key)
        fine.append(f"{key}|{_fact(scanner)}" if key is not None and _fact(scanner) else key)
    sizes = Counter(fine)
    out = np.empty(len(kernel), dtype=object)
    out[:] = [f if sizes[f] >= MIN_GROUP_SCANS else c for f, c in zip(fine, coarse, strict=True)]
    if coverage_mm is None:
        return out
    with np.errstate(invalid="ignore"):
        short = np.asarray(coverage_mm, dtype=np.float64) < SHORT_COVERAGE_MM
    slab = [f"{'unknown' if key is None else key}|short" for key in out]
    slabs = Counter(key for key, is_short in zip(slab, short, strict=True) if is_short)
    out[:] = [s if is_short and slabs[s] >= MIN_GROUP_SCANS else key
              for key, s, is_short in zip(out, slab, short, strict=True)]
    return out


def _fact(value: object) -> str:
    """A header fact as a group key part: stripped, lower case, '' where missing."""
    return str(value).strip().lower() if isinstance(value, str) else ""


def _histogram_features(counts: np.ndarray) -> np.ndarray:
    """The square roots of ``histogram_features`` (the Hellinger embedding) of the rows without
    NaN; NaN rows stay NaN.

    Why the square root: a bin's fraction varies from scan to scan as its count's noise does,
    ~ √fraction, so on plain fractions a rarely occupied bin (bone at 1280–1536 HU on a noisy
    phantom, a patient's own clip) has a tiny spread over the reference and a scan holding a few
    voxels there lies far off; the square root gives every bin about the same noise. On the
    real-anatomy development seeds it lowered the inliers flagged where a minority base's
    histogram was read as far (3.4 → 1.7 %, 5.0 → 0.8 %), and on phantoms 5.3 → 2.6 %."""
    out = np.full(counts.shape, np.nan)
    usable = np.isfinite(counts).all(axis=1)
    if usable.any():
        out[usable] = np.sqrt(histogram_features(counts[usable]))
    return out
