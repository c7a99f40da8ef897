"""Agreement between reviewers: Cohen's kappa for a pair, Fleiss' kappa for more, with bootstrap
confidence intervals over scans; and between two runs' flags and scores (``run_agreement``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BOOTSTRAP_SAMPLES = 1000


@dataclass(frozen=True)
class Kappa:
    """A kappa over ``n`` scans with its 95 % percentile-bootstrap interval (NaN when undefined)."""

    kappa: float
    low: float
    high: float
    n: int


def cohen_kappa(a: np.ndarray, b: np.ndarray) -> float:
    """Cohen's kappa of two readers' categories of the same scans (NaN when chance agreement is 1).

    Equal to ``sklearn.metrics.cohen_kappa_score`` (tested), without its per-call validation:
    the bootstrap calls it a thousand times per pair.
    """
    a, b = np.asarray(a), np.asarray(b)
    if len(a) == 0:
        return float("nan")
    _, codes = np.unique(np.concatenate([a, b]), return_inverse=True)
    k = int(codes.max()) + 1
    table = np.bincount(codes[: len(a)] * k + codes[len(a) :], minlength=k * k).reshape(k, k)
    table = table / len(a)
    p_o = np.trace(table)
    p_e = float(table.sum(axis=1) @ table.sum(axis=0))
    if p_e == 1.0:
        return float("nan")
    return float((p_o - p_e) / (1 - p_e))


def fleiss_kappa(counts: np.ndarray) -> float:
    """Fleiss' kappa of a (scans, categories) table of how many readers chose each category.

    Every scan needs the same number of readers n ≥ 2 (Fleiss 1971, eqs. 1-7): P_i is the share
    of agreeing reader pairs on scan i, P_e the agreement of readers choosing by the category
    shares p_j.
    """
    counts = np.asarray(counts, dtype=float)
    if counts.ndim != 2 or len(counts) == 0:
        return float("nan")
    n = counts.sum(axis=1)
    if np.any(n != n[0]) or n[0] < 2:
        raise ValueError(f"every scan needs the same number (≥ 2) of reads, not {sorted(set(n))}")
    p_j = counts.sum(axis=0) / counts.sum()
    p_i = (np.sum(counts**2, axis=1) - n) / (n * (n - 1))
    p_e = float(np.sum(p_j**2))
    if p_e == 1.0:
        return float("nan")
    return float((p_i.mean() - p_e) / (1 - p_e))


def _interval(stat, n: int, seed: int) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    draws = np.array([stat(rng.integers(0, n, n)) for _ in range(BOOTSTRAP_SAMPLES)])
    draws = draws[np.isfinite(draws)]
    if len(draws) < BOOTSTRAP_SAMPLES // 2:
        return float("nan"), float("nan")
    low, high = np.percentile(draws, [2.5, 97.5])
    return float(low), float(high)


def cohen_with_interval(a, b, seed: int = 0) -> Kappa:
    """Cohen's kappa of paired reads with a bootstrap interval (scans resampled)."""
    a, b = np.asarray(a), np.asarray(b)
    low, high = _interval(lambda i: cohen_kappa(a[i], b[i]), len(a), seed) if len(a) else (
        float("nan"), float("nan"))
    return Kappa(cohen_kappa(a, b), low, high, len(a))


def fleiss_with_interval(counts, seed: int = 0) -> Kappa:
    """Fleiss' kappa of a (scans, categories) count table with a bootstrap interval."""
    counts = np.asarray(counts, dtype=float)
    if len(counts) == 0:
        return Kappa(float("nan"), float("nan"), float("nan"), 0)
    low, high = _interval(lambda i: fleiss_kappa(counts[i]), len(counts), seed)
    return Kappa(fleiss_kappa(counts), low, high, len(counts))


@dataclass(frozen=True)
class RunAgreement:
    """How two runs' verdicts on the same scans agree.

    Attributes:
        scans: Scans both runs scored and flagged.
        both, only_a, only_b, neither: How many each run flagged (above its own T).
        kappa: Cohen's kappa of the two flags (NaN when one run flags all or none alike).
        spearman: Rank correlation of the two runs' scores (each the score its T applies to).
    """

    scans: int
    both: int
    only_a: int
    only_b: int
    neither: int
    kappa: float
    spearman: float


def run_agreement(flags_a: np.ndarray, flags_b: np.ndarray, scores_a: np.ndarray,
                  scores_b: np.ndarray) -> RunAgreement:
    """Agreement of two runs on the same scans (one row each, in the same order): their flags
    cross-counted with Cohen's kappa, and their scores' Spearman rank correlation."""
    from scipy.stats import spearmanr

    a, b = np.asarray(flags_a, dtype=bool), np.asarray(flags_b, dtype=bool)
    n = len(a)
    scores_a, scores_b = np.asarray(scores_a, dtype=float), np.asarray(scores_b, dtype=float)
    varied = n > 1 and np.ptp(scores_a) > 0 and np.ptp(scores_b) > 0
    rho = float(spearmanr(scores_a, scores_b).statistic) if varied else float("nan")
    return RunAgreement(n, int((a & b).sum()), int((a & ~b).sum()), int((~a & b).sum()),
                        int((~a & ~b).sum()), cohen_kappa(a, b), rho)
