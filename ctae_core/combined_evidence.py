"""The outlier score from a scan's calibrated kinds of evidence: how unlikely an inlier is to
show its strongest kind, or its few strongest kinds together, whichever is less likely.

Each kind's z is already an equivalent-normal z under its empirical null
(``ctae_core.calibration``), so −log P(Z > z) is, for an inlier, an Exp(1) variable. A scan
with one glaring kind (a wrong rescale, a missing slab) is judged by its strongest kind under
Šidák's correction for K kinds. A scan that is moderately unusual in several kinds at once (a
head scan misfiled in a chest archive: its histogram, tissues, outline and contrast all
at z ≈ 3; a pacemaker: its histogram, metal and inner objects) is judged by the sum of its
``TOP_KINDS`` strongest −log p under the exact null of that sum for K independent kinds (the
rank-truncated product of Dudbridge and Koeleman, 2003). The scan's p is Šidák's over the two
statistics, 1 − (1 − p_min)², valid because they rise together (both grow with the strongest
kind), and the score writes it back on the scale of one kind's −log p (Šidák's inverse for K
kinds), so that T keeps its meaning (``ctae_core.thresholds``: T = −log(1 − (1 − p)^(1/K)))
and a scan flagged by one kind alone scores about its strongest kind's −log p less log 2.

Chosen on the real-anatomy development seeds (README "Detection quality on real anatomy"):
summing more kinds ranked anomalies better but let real inliers past T more often than p
promises (the histogram, tissue and contrast kinds share one histogram, so the kinds are not
independent); three kept every seed's inliers flagged at T within the target.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import norm

TOP_KINDS = 3
"""Kinds whose −log p are summed for the second statistic."""


def top_sum_logsf(s: np.ndarray, n: int, k: int) -> np.ndarray:
    """log P(T > s) where T is the sum of the ``k`` largest of ``n`` independent Exp(1) values
    (−log p of ``n`` independent uniform p-values), in closed form.

    Rényi's representation makes T a Gamma(k, 1) variable plus independent Exp(rate m / k)
    ones, m = k+1..n (a hypoexponential sum with distinct rates λ and weights c). With
    a = λ − 1 > 0, P(T > s) = e^−s · [Σ_{i<k} s^i / i! + Σ_λ c_λ J_λ(s)], where
    J(s) = ∫_0^s (s − u)^(k−1) e^(−a u) du / (k−1)! is written with lower incomplete gammas; the
    factor e^−s is kept out of the bracket, so the log holds far into the tail.
    """
    from math import comb, factorial

    from scipy.special import gammainc

    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n, not k={k}, n={n}")
    s = np.maximum(np.asarray(s, dtype=np.float64), 0.0)
    bracket = sum(s**i / factorial(i) for i in range(k))  # Gamma(k, 1)'s sf without e^−s
    rates = np.arange(k + 1, n + 1, dtype=np.float64) / k
    for rate in rates:
        weight = np.prod([r / (r - rate) for r in rates if r != rate])
        a = rate - 1.0
        j = sum(comb(k - 1, i) * s ** (k - 1 - i) * (-1) ** i * factorial(i)
                * gammainc(i + 1, a * s) / a ** (i + 1) for i in range(k))
        bracket = bracket + weight * j / factorial(k - 1)
    with np.errstate(divide="ignore"):
        return np.minimum(-s + np.log(np.maximum(bracket, 1e-300)), 0.0)


def _statistics(z: np.ndarray, top_kinds: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per scan of (K, N) ``z``: log p of its strongest kind, log p of its ``top_kinds``
    strongest together (each among the scan's measured kinds; NaN for a scan without any), and
    how many kinds the second summed."""
    evidence = np.where(np.isfinite(z), -norm.logsf(z), -np.inf)  # −log p per kind
    measured = np.isfinite(z).sum(axis=0)
    ranked = -np.sort(-evidence, axis=0)  # strongest first; unmeasured (−inf) last
    strongest, together = np.full(z.shape[1], np.nan), np.full(z.shape[1], np.nan)
    summed = np.minimum(measured, top_kinds)
    for m in np.unique(measured[measured > 0]):
        cols, k = measured == m, min(top_kinds, int(m))
        strongest[cols] = top_sum_logsf(ranked[0, cols], int(m), 1)
        together[cols] = top_sum_logsf(ranked[:k, cols].sum(axis=0), int(m), k)
    return strongest, together, summed


def deciding_kinds(z: np.ndarray, top_kinds: int = TOP_KINDS) -> np.ndarray:
    """Per scan, how many of its strongest kinds decide its score: 1 where the strongest kind
    alone is less likely for an inlier than its ``top_kinds`` strongest together, else
    ``top_kinds`` (fewer where fewer kinds were measured); 0 for a scan without any finite z.
    ``z`` as in :func:`combined_score`."""
    strongest, together, summed = _statistics(np.atleast_2d(np.asarray(z, dtype=np.float64)), top_kinds)
    return np.where(np.isnan(strongest), 0, np.where(together < strongest, summed, 1))


def combined_score(z: np.ndarray, top_kinds: int = TOP_KINDS) -> np.ndarray:
    """The outlier score of each scan, on the scale of one kind's −log p (module docstring).

    Args:
        z: (K, N) equivalent-normal z per kind and scan; NaN where a kind was not measured (the
            scan's statistics then count only its measured kinds).
        top_kinds: Kinds summed in the second statistic.

    Returns:
        (N,) scores; NaN for a scan without any finite z.
    """
    z = np.atleast_2d(np.asarray(z, dtype=np.float64))
    strongest, together, _ = _statistics(z, top_kinds)
    log_p = np.minimum(strongest, together)  # the smaller p of the two statistics
    # the scan's p: Šidák over the two statistics, 1 − (1 − p)², valid as they rise together;
    # on one kind's scale: 1 − (1 − p)^(2 / K)
    kinds = z.shape[0]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        per_kind = -np.expm1(2.0 / kinds * np.log1p(-np.exp(log_p)))
        # for a tiny p, 1 − p rounds to 1: then −log(2p / K) is the score to double precision
        score = np.where(log_p < -30.0, np.log(kinds / 2.0) - log_p, -np.log(per_kind))
    return np.where(np.isnan(log_p), np.nan, score)
