"""How good the verdicts are, against planted ground truth (beyond the thesis, which had none).

For each method's score: AUROC and average precision (overall and per outlier type),
precision and recall at the threshold T, the share of inliers flagged at T (the false-alarm rate
T promises), and the Spearman correlation of the score with pixel
count among inliers (the thesis's size bias, Figs. 4.2 and 4.5). Two baselines score the same
scans without any autoencoder: pixel statistics + IsolationForest, and HU-histogram features +
Mahalanobis distance. Both are unsupervised: they are fitted on the scans the job names
(the training split), never on the truth.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ctae_core.distances import histogram_features, mahalanobis_scores, standardised

INLIER = "inlier"
ALL_TYPES = "all"
PIXEL_STAT_COLUMNS = ("hu_mean", "hu_std", "hu_min", "hu_max", "hu_p1", "hu_p99")


@dataclass(frozen=True)
class EvaluationRow:
    """One method on one outlier type (or ``all``); NaN where a metric is undefined."""

    method: str
    outlier_type: str
    n_inliers: int
    n_outliers: int
    auroc: float
    average_precision: float
    precision_at_t: float
    recall_at_t: float
    false_alarm_rate: float
    spearman_pixel_count: float

    def to_dict(self) -> dict[str, Any]:
        """Plain dict, column names as in the ``evaluations`` table."""
        return asdict(self)


def ranking_metrics(is_outlier: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    """(AUROC, average precision) of ``scores`` against true outliers; NaN with one class only."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    y = np.asarray(is_outlier, dtype=bool)
    if y.all() or not y.any():
        return float("nan"), float("nan")
    s = np.asarray(scores, dtype=np.float64)
    return float(roc_auc_score(y, s)), float(average_precision_score(y, s))


def precision_recall_at(is_outlier: np.ndarray, flagged: np.ndarray) -> tuple[float, float]:
    """(precision, recall) of the flags; precision is NaN when nothing is flagged."""
    from sklearn.metrics import precision_score, recall_score

    y = np.asarray(is_outlier, dtype=bool)
    f = np.asarray(flagged, dtype=bool)
    precision = float(precision_score(y, f, zero_division=np.nan))
    recall = float(recall_score(y, f, zero_division=np.nan))
    return precision, recall


def operating_points(is_outlier: np.ndarray, scores: np.ndarray,
                     thresholds: dict[str, float]) -> list[dict[str, Any]]:
    """Per threshold (keyed by what names it, e.g. the p that gives it): T, the scans flagged
    above it, precision, recall and the share of inliers flagged; NaN scores are never flagged."""
    y = np.asarray(is_outlier, dtype=bool)
    s = np.asarray(scores, dtype=np.float64)
    rows = []
    for key, t in thresholds.items():
        flagged = np.nan_to_num(s, nan=-np.inf) > t
        precision, recall = precision_recall_at(y, flagged)
        rows.append({"at": key, "threshold": float(t), "flagged": int(flagged.sum()),
                     "precision": precision, "recall": recall,
                     "false_alarm_rate": float(flagged[~y].mean()) if (~y).any() else float("nan")})
    return rows


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation; NaN for fewer than three pairs or a constant input."""
    from scipy.stats import spearmanr

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.size < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def spearman_interval(rho: float, n: int, level: float = 0.95) -> tuple[float, float]:
    """The ``level`` confidence interval of a Spearman ρ over ``n`` pairs, by Fisher's z with
    Bonett and Wright's (2000) variance (1 + ρ² / 2) / (n − 3); (NaN, NaN) for n < 4 or a NaN ρ.

    Why: the size-bias target |ρ| < 0.1 is read on one cohort's inliers. Over ~120 inliers an
    interval is about ±0.18 wide, so a score with no size bias at all misses the target on about
    a quarter of such cohorts, and a ρ of −0.15 on one cohort says little by itself."""
    from scipy.stats import norm

    if n < 4 or not np.isfinite(rho):
        return float("nan"), float("nan")
    rho = float(np.clip(rho, -0.999999, 0.999999))
    half = norm.isf((1.0 - level) / 2.0) * np.sqrt((1.0 + rho**2 / 2.0) / (n - 3))
    return float(np.tanh(np.arctanh(rho) - half)), float(np.tanh(np.arctanh(rho) + half))


def evaluate_method(
    method: str,
    scores: np.ndarray,
    truth: np.ndarray,
    *,
    threshold: float | None,
    pixel_count: np.ndarray,
) -> list[EvaluationRow]:
    """All metrics of one score: one ``all`` row, then one row per outlier type.

    Args:
        method: Name stored with the rows (``mse_m``, ``isolation_forest``, ...).
        scores: (N,) higher = more suspicious. NaN scores are left out.
        truth: (N,) ``inlier`` or an outlier type name per scan.
        threshold: T on this score (flag = score > T); None leaves precision/recall NaN.
        pixel_count: (N,) voxels of each scan before padding.

    Per-type rows compare that type's outliers against all inliers; the size-bias correlation
    is the same inlier set for every row, so it is reported on the ``all`` row only.
    """
    scores = np.asarray(scores, dtype=np.float64)
    truth = np.asarray(truth, dtype=object)
    keep = np.isfinite(scores)
    scores, truth = scores[keep], truth[keep]
    sizes = np.asarray(pixel_count, dtype=np.float64)[keep]
    inliers = truth == INLIER
    rows = [_row(method, ALL_TYPES, scores, ~inliers, threshold,
                 spearman(scores[inliers], sizes[inliers]))]
    for outlier_type in sorted(set(truth[~inliers])):
        subset = inliers | (truth == outlier_type)
        rows.append(_row(method, str(outlier_type), scores[subset], ~inliers[subset], threshold,
                         float("nan")))
    return rows


def _row(method: str, outlier_type: str, scores: np.ndarray, is_outlier: np.ndarray,
         threshold: float | None, rho: float) -> EvaluationRow:
    auroc, ap = ranking_metrics(is_outlier, scores)
    precision = recall = false_alarms = float("nan")
    if threshold is not None and np.isfinite(threshold) and scores.size:
        precision, recall = precision_recall_at(is_outlier, scores > threshold)
        if (~is_outlier).any():
            false_alarms = float(np.mean(scores[~is_outlier] > threshold))
    return EvaluationRow(method, outlier_type, int((~is_outlier).sum()), int(is_outlier.sum()),
                         auroc, ap, precision, recall, false_alarms, rho)


@dataclass(frozen=True)
class BaseRow:
    """The run's score on the scans made from one base (a real volume the cohort was copied
    from, the truth file's ``base``); NaN where a metric is undefined.

    ``auroc_within`` ranks the base's outliers against the base's own inliers: whether the score
    separates them where the anatomy, kernel and scanner are the same. ``auroc_cohort`` ranks
    them against every inlier of the cohort, as a reviewer reading the ranked list meets them.
    A base the cohort holds no inliers of (a wrong body region) has only the second."""

    base: str
    n_inliers: int
    n_outliers: int
    auroc_within: float
    auroc_cohort: float
    recall_at_t: float
    inliers_flagged: int


def evaluate_by_base(scores: np.ndarray, truth: np.ndarray, base: np.ndarray, *,
                     threshold: float | None) -> list[BaseRow]:
    """One ``BaseRow`` per base, in the order of the bases' names; NaN scores are left out.

    Args:
        scores: (N,) higher = more suspicious.
        truth: (N,) ``inlier`` or an outlier type name per scan.
        base: (N,) the base each scan was made from (empty: none named).
        threshold: T on this score (flag = score > T); None leaves recall NaN and counts none flagged.
    """
    scores = np.asarray(scores, dtype=np.float64)
    keep = np.isfinite(scores)
    scores = scores[keep]
    inliers = np.asarray(truth, dtype=object)[keep] == INLIER
    names = np.array([str(b) if b is not None and str(b) else "(none)"
                      for b in np.asarray(base, dtype=object)[keep]], dtype=object)
    has_t = threshold is not None and np.isfinite(threshold)
    flagged = scores > threshold if has_t else np.zeros(scores.size, dtype=bool)
    rows = []
    for name in sorted(set(names)):
        own = names == name
        outliers = own & ~inliers
        cohort = inliers | outliers
        auroc_within, _ = ranking_metrics(outliers[own], scores[own])
        auroc_cohort, _ = ranking_metrics(outliers[cohort], scores[cohort])
        recall = float(flagged[outliers].mean()) if has_t and outliers.any() else float("nan")
        rows.append(BaseRow(name, int((own & inliers).sum()), int(outliers.sum()), auroc_within,
                            auroc_cohort, recall, int((flagged & own & inliers).sum())))
    return rows


@dataclass(frozen=True)
class SizeBiasByBase:
    """A score's size bias among the inliers (Spearman ρ with pixel count), taken apart by the
    base each scan was made from.

    Why: on a real-anatomy cohort the bases come in sizes of their own (a 40 mm slab, a 550 mm
    bore) and score at levels of their own; ρ over all inliers mixes how the bases' levels line
    up with their sizes (``between``) with how a score leans with size among copies of one scan
    (``within``). On ten seeds of stop 61, ``between`` ran from −0.54 to +0.69 and ``within``
    averaged −0.056; ``centred`` (each score less its base's median) lay within −0.141 and +0.031.

    Attributes:
        within: ρ inside each base, averaged weighted by its inliers.
        between: ρ of each inlier's base median score with its base median pixel count.
        centred: ρ of each score less its base's median score, with pixel count.
        n_bases: Bases with enough inliers to take part.
    """

    within: float
    between: float
    centred: float
    n_bases: int


def size_bias_by_base(scores: np.ndarray, pixel_count: np.ndarray, truth: np.ndarray, base: np.ndarray,
                      *, min_inliers: int = 6) -> SizeBiasByBase | None:
    """``SizeBiasByBase`` over the inliers of bases with ≥ ``min_inliers`` scored inliers; None
    with fewer than two such bases. NaN scores are left out."""
    scores = np.asarray(scores, dtype=np.float64)
    keep = np.isfinite(scores) & (np.asarray(truth, dtype=object) == INLIER)
    names = np.array([str(b) for b in np.asarray(base, dtype=object)], dtype=object)[keep]
    values, sizes = scores[keep], np.asarray(pixel_count, dtype=np.float64)[keep]
    bases = [b for b in sorted(set(names)) if b and (names == b).sum() >= min_inliers]
    if len(bases) < 2:
        return None
    inside = np.isin(names, bases)
    values, sizes, names = values[inside], sizes[inside], names[inside]
    level = {b: float(np.median(values[names == b])) for b in bases}
    size = {b: float(np.median(sizes[names == b])) for b in bases}
    own_level = np.array([level[b] for b in names])
    own_size = np.array([size[b] for b in names])
    within = [(int((names == b).sum()), spearman(values[names == b], sizes[names == b])) for b in bases]
    within = [(n, rho) for n, rho in within if np.isfinite(rho)]  # a base of one size has no ρ
    return SizeBiasByBase(within=float(np.average([r for _, r in within], weights=[n for n, _ in within]))
                          if within else float("nan"),
                          between=spearman(own_level, own_size),
                          centred=spearman(values - own_level, sizes), n_bases=len(bases))


def pixel_stat_features(columns: Mapping[str, np.ndarray]) -> np.ndarray:
    """(N, 9) pixel statistics per scan: HU mean/std/min/max/p1/p99, log pixel count, body and
    metal fractions. ``columns`` maps the ``scans`` column names to (N,) arrays."""
    pixels = np.asarray(columns["pixel_count"], dtype=np.float64)
    if (pixels <= 0).any():
        raise ValueError("pixel_count must be > 0 for every scan; re-ingest the scans with 0")
    feats = [np.asarray(columns[name], dtype=np.float64) for name in PIXEL_STAT_COLUMNS]
    feats += [np.log(pixels),
              np.asarray(columns["body_voxels"], dtype=np.float64) / pixels,
              np.asarray(columns["metal_voxels"], dtype=np.float64) / pixels]
    return np.column_stack(feats)


def isolation_forest_scores(features: np.ndarray, fit_rows: np.ndarray, *, seed: int = 0) -> np.ndarray:
    """IsolationForest anomaly score per row (higher = more anomalous), fitted on ``fit_rows``."""
    from sklearn.ensemble import IsolationForest

    x = standardised(features, fit_rows)
    forest = IsolationForest(n_estimators=200, random_state=seed).fit(x[fit_rows])
    return -forest.score_samples(x)


__all__ = [
    "BaseRow", "EvaluationRow", "evaluate_by_base", "evaluate_method", "histogram_features",
    "isolation_forest_scores", "mahalanobis_scores", "pixel_stat_features", "precision_recall_at",
    "ranking_metrics", "size_bias_by_base", "SizeBiasByBase", "spearman", "spearman_interval",
]
