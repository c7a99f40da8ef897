"""Evidence values → calibrated z: how far a scan lies in the upper tail of the reference scans
(every scored scan of the run, or those acquired alike), under an empirical null.

The null is centred on the reference's median and scaled by its lower half (median − lower
quartile): an uncurated archive's outliers sit in the upper tail, where they would inflate a
scale measured there (15 % of outliers widen the upper quartile's distance 1.8-fold, the lower
one's 1.1-fold). Real-anatomy evidence is heavier-tailed than normal (kernels, patients,
fields of view), and a normal tail flagged far more inliers than p promises, so the null is a
Student t (``NULL_DF``, ``DISTANCE_NULL_DF``; chosen on the real-anatomy development cohort,
README "Detection quality"). Its upper-tail probability is written as the equivalent
standard-normal z, so every kind of evidence speaks one scale.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.stats import norm, t

NULL_DF = 10.0
"""Degrees of freedom of the null's t for one-number evidence (``np.inf``: normal)."""
DISTANCE_NULL_DF = 4.0
"""The same for Mahalanobis distances of many features (histogram, tissues, outline, latent),
whose log is heavier-tailed among real inliers: a scan unusual in any of many directions."""
MIN_GROUP_SCANS = 5
"""Reference scans an acquisition group needs for its own centre."""
OUTLIER_SHARE = 0.15
"""Share of a group's reference scans that may be outliers (an uncurated archive: 10–15 %);
the hurdle's share of positive values leaves that many out (``_positive_share``)."""
TRIM_MIN_SCANS = 12
"""Groups with fewer reference scans keep the plain share of positives: one scan more or less
is most of what they know of their tail (on the real-volume test's groups of 5–7 scans, leaving
one out let a second of 35 real inliers past T)."""
AMOUNT_MIN_SCALE = 0.5
"""The least scale (log units) of ``hurdle_z``'s amount null. The amounts are counted in voxels of
the acquired grid (a length of 3, 5 or 6 mm, a few mm³), and where the positives of a run tie on
a few such values their lower half is narrow: on a real-anatomy cohort (seed 333) the scale of
``long_object_z`` collapsed and a 24 mm object of a base's own read z 4.7 (a 40 mm one z 2.3 on
seed 330); 7 of 119 real inliers were flagged by it. At 0.5 one voxel's step (3 → 5 mm) is one
scale unit; over 14 real-anatomy cohorts (321–334) the inliers flagged fell from 10 to 1 of 1,666
and the outlier score's AUROC rose 0.9763 → 0.9774 (floors 0.4–0.8 alike; docs/detection-history.md, *Stop 46*).
No other kind's scale fell below it there."""
MIN_P = 1e-300
OTHER_ACQUISITIONS = "(other acquisitions)"
"""The group key ``hurdle_z``'s amount gives the scans of unknown acquisition and small groups."""


def null_z(values: np.ndarray, reference_rows: np.ndarray,
           groups: Sequence[object] | np.ndarray | None = None, *, df: float | None = None,
           min_scale: float = 0.0) -> np.ndarray:
    """Equivalent-normal z of each value's upper-tail probability under the empirical null of
    the reference, taken among scans acquired alike where ``groups`` (acquisition group per
    scan, None: unknown) allows: each group holding at least ``MIN_GROUP_SCANS`` finite
    reference values (the scans of the other groups and of unknown acquisition count as one
    more) is centred on its median, shrunk towards the reference's median as far as the groups'
    medians differ no more than sampling explains (``group_centres``); the null's scale is the
    pooled one of these residuals (a kernel shifts noise and texture, and five scans can tell a
    centre but not a tail)."""
    values = np.asarray(values, dtype=np.float64)
    reference_rows = np.asarray(reference_rows, dtype=bool)
    df = NULL_DF if df is None else df
    if groups is None:
        return _null_z(values, reference_rows, df, min_scale)
    finite_ref = reference_rows & np.isfinite(values)
    members = [rows for rows in _group_rows(groups, finite_ref) if (rows & finite_ref).any()]
    if not members:  # no finite reference value
        return _null_z(values, reference_rows, df, min_scale)
    centres = group_centres([values[rows & finite_ref] for rows in members], df)
    residual = values.copy()
    for rows, centre in zip(members, centres, strict=True):
        residual[rows] = values[rows] - centre
    return _null_z(residual, reference_rows, df, min_scale)


def hurdle_z(values: np.ndarray, reference_rows: np.ndarray,
             groups: Sequence[object] | np.ndarray | None = None, *,
             amount_by_group: bool = True, amount_min_scale: float = AMOUNT_MIN_SCALE) -> np.ndarray:
    """Equivalent-normal z of a measure that is 0 on most scans of some acquisitions and
    positive, heavy-tailed, on some scans of others (metal away from bone: none on a smooth
    kernel, a sharp kernel's overshoot on many): P(X > x) = π_g · P(log X > log x | X > 0).
    π_g is the share of the scan's acquisition group (as in ``null_z``) with a positive value,
    less ``OUTLIER_SHARE`` of the group where it holds ``TRIM_MIN_SCANS`` or more (outliers with
    metal in an uncurated reference must not teach it that metal is usual: a smooth kernel's
    group of 24 scans held none of its own, and five inserted objects made π 0.22), with half a
    scan of prior (a group without any still allows one); the amount among positive values
    follows ``null_z`` of its log among the positives acquired alike: a group whose positives
    outnumber its possible outliers by ``MIN_GROUP_SCANS`` or more (``_own_amount_groups``) is
    centred on their median, shrunk towards the pooled one as far as sampling explains; the
    other scans' amounts are judged among every positive, so that a smooth kernel's few
    inserted objects never become its centre (among the real-anatomy inliers a sharp kernel's
    overshoot is a median ~100 mm³ where one abdomen's own dense voxels are ~500, so one pooled
    centre hid a valve on the sharp kernel; README "Detection quality on real anatomy").
    The amount's null scale is at least ``amount_min_scale`` (``AMOUNT_MIN_SCALE``: amounts
    counted in whole voxels tie, and ties collapsed it).
    ``amount_by_group=False``: every amount among every positive (until stop 31). A 0 gets the
    mid-p (1 + π_g) / 2: never evidence. A location-scale null cannot hold here: where half the
    reference is exactly 0 its lower half has no spread."""
    values = np.asarray(values, dtype=np.float64)
    reference_rows = np.asarray(reference_rows, dtype=bool)
    finite_ref = reference_rows & np.isfinite(values)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_amount = np.log(np.where(values > 0, values, np.nan))
    amount_z = null_z(log_amount, reference_rows, None, min_scale=amount_min_scale)
    own = _own_amount_groups(values, finite_ref, groups if amount_by_group else None)
    if own is not None and any(key is not None for key in own):
        amount_z = np.where(own != None, null_z(log_amount, reference_rows, own,  # noqa: E711
                                                min_scale=amount_min_scale), amount_z)
    share = np.full(len(values), np.nan)
    for rows in _group_rows([None] * len(values) if groups is None else groups, finite_ref):
        share[rows] = _positive_share(values[rows & finite_ref])
    with np.errstate(invalid="ignore"):
        p = np.where(values > 0, share * norm.sf(amount_z), (1 + share) / 2)
    return np.where(np.isfinite(values), norm.isf(np.maximum(p, MIN_P)), np.nan)


def group_centred(features: np.ndarray, reference_rows: np.ndarray,
                  groups: Sequence[object] | np.ndarray, df: float = NULL_DF) -> np.ndarray:
    """(N, F) ``features`` with each acquisition group moved onto the reference's centre: per
    feature, the group's median (shrunk towards the reference's as in ``group_centres``) is
    replaced by the median of the whole reference, so that a distance measured afterwards asks
    how far a scan lies from scans acquired alike, not from the cohort's majority. Groups as in
    ``null_z`` (the scans of small groups and of unknown acquisition together); rows with a
    non-finite feature are left as they are."""
    x = np.asarray(features, dtype=np.float64)
    usable = np.asarray(reference_rows, dtype=bool) & np.isfinite(x).all(axis=1)
    members = [rows for rows in _group_rows(groups, usable) if (rows & usable).any()]
    if len(members) < 2:
        return x.copy()
    out = x.copy()
    for j in range(x.shape[1]):
        pooled = float(np.median(x[usable, j]))
        centres = group_centres([x[rows & usable, j] for rows in members], df)
        for rows, centre in zip(members, centres, strict=True):
            out[rows, j] = x[rows, j] - centre + pooled
    return out


def _group_rows(groups: Sequence[object] | np.ndarray, finite_ref: np.ndarray) -> list[np.ndarray]:
    """The scans of each acquisition group with at least ``MIN_GROUP_SCANS`` finite reference
    values, then one more of every other scan (unknown acquisition, NaN keys and smaller groups
    together; left out when empty): boolean rows over the scans."""
    keys = _group_keys(groups)
    # in the keys' sorted order, not a set's (its order follows Python's hash seed, and the
    # groups' order reaches the floating sums of ``group_centres``)
    members = [keys == key for key in sorted({k for k in keys if k is not None}, key=str)]
    members = [rows for rows in members if (rows & finite_ref).sum() >= MIN_GROUP_SCANS]
    rest = np.ones(len(keys), dtype=bool)
    for rows in members:
        rest &= ~rows
    return [*members, rest] if rest.any() else members


def _group_keys(groups: Sequence[object] | np.ndarray) -> np.ndarray:
    """The acquisition group per scan as an object array, None for unknown (None or NaN)."""
    return np.asarray([None if g is None or g != g else g for g in groups], dtype=object)


def _own_amount_groups(values: np.ndarray, finite_ref: np.ndarray,
                       groups: Sequence[object] | np.ndarray | None) -> np.ndarray | None:
    """Per scan, its acquisition group where the group's reference holds ``TRIM_MIN_SCANS`` or
    more scans and ``MIN_GROUP_SCANS`` or more positive values beyond ``OUTLIER_SHARE`` of them
    (positives that cannot all be its outliers), else None (pooled); the scans of unknown
    acquisition and of small groups together as ``OTHER_ACQUISITIONS`` by the same rule; None
    when ``groups`` is. (On the real-volume test's groups of 5–7 scans, two of them anomalies,
    a group's own centre let two of 35 real inliers past T.)"""
    if groups is None:
        return None
    keys = _group_keys(groups)
    out = np.full(len(values), None, dtype=object)
    for rows in _group_rows(keys, finite_ref):
        reference = values[rows & finite_ref]
        beyond = np.count_nonzero(reference > 0) - int(OUTLIER_SHARE * reference.size)
        if reference.size >= TRIM_MIN_SCANS and beyond >= MIN_GROUP_SCANS:
            names = set(keys[rows])  # more than one (or None): the rest of ``_group_rows``
            out[rows] = names.pop() if len(names) == 1 and None not in names else OTHER_ACQUISITIONS
    return out


def _positive_share(reference: np.ndarray) -> float:
    """Share of reference values above 0 once ``OUTLIER_SHARE`` of the reference is left out of
    the positives (in a group of at least ``TRIM_MIN_SCANS``), with half a scan of prior."""
    positives = int(np.count_nonzero(reference > 0))
    if reference.size >= TRIM_MIN_SCANS:
        positives = max(positives - int(OUTLIER_SHARE * reference.size), 0)
    return (positives + 0.5) / (reference.size + 1)


def group_centres(samples: Sequence[np.ndarray], df: float) -> list[float]:
    """Each group's centre: its median shrunk towards the median of all samples by the share
    of the spread of the groups' medians that sampling does not explain (an empirical-Bayes
    weight τ² / (τ² + v_g), v_g the sampling variance of group g's median). Kernels that truly
    shift a measure keep their own centres; groups that only carry a label (the phantoms' random
    header kernels) fall back to the common one instead of chasing the noise of five scans."""
    pooled = float(np.median(np.concatenate(samples)))
    medians = np.array([np.median(s) for s in samples])
    if len(samples) < 2:
        return [float(m) for m in medians]
    _, scale = _centre_scale(np.concatenate([s - m for s, m in zip(samples, medians, strict=True)]), df)
    sd = scale * float(np.sqrt(t.var(df))) if df > 2 else scale * 2.0
    variance = np.pi / 2 * sd**2 / np.array([len(s) for s in samples])  # of a median
    between = max(float(np.mean((medians - pooled) ** 2 - variance)), 0.0)
    weight = between / (between + variance)
    return [float(c) for c in pooled + weight * (medians - pooled)]


def _centre_scale(ref: np.ndarray, df: float) -> tuple[float, float]:
    """Median and the t null's scale from the lower half (median − lower quartile)."""
    centre = float(np.median(ref))
    scale = (centre - float(np.quantile(ref, 0.25))) / t.ppf(0.75, df)
    if not scale > 0:  # a reference with one common value (e.g. counts of 0)
        scale = float(np.std(ref)) or 1.0
    return centre, scale


def _null_z(values: np.ndarray, reference_rows: np.ndarray, df: float, min_scale: float = 0.0) -> np.ndarray:
    ref = values[reference_rows]
    ref = ref[np.isfinite(ref)]
    if ref.size == 0:
        return np.full(values.shape, np.nan)
    centre, scale = _centre_scale(ref, df)
    scale = max(scale, min_scale)  # amounts counted in voxels: ties must not narrow it (hurdle_z)
    with np.errstate(invalid="ignore"):
        p = t.sf((values - centre) / scale, df)
    return np.where(np.isfinite(values), norm.isf(np.maximum(p, MIN_P)), np.nan)
