"""The outlier threshold T and the flags it gives (thesis eq. 3.4 and two alternatives).

Rules, all fitted on the validation split's scores:

- ``mean_std``: T = mean + k·std (eq. 3.4, k = 3; std with ``ddof = 0``, NumPy's default).
- ``mad``: T = median + k·MAD (scaled to estimate a normal SD), a robust version that a few
  outliers in the validation split cannot drag upwards.
- ``percentile``: T = the ``percentile``-th percentile (linear interpolation).

One rule is for the outlier score only (``ctae_core/outlier_score.py``), whose evidence is
already calibrated (``ctae_core/calibration.py``):

- ``pvalue``: T such that an inlier's score exceeds it with probability at most p. The score
  (``ctae_core.combined_evidence``) is a scan's p for n calibrated kinds of evidence written on
  the scale of one kind's −log p, q = 1 − (1 − p)^(1/n) (Šidák's inverse), so T = −log q; for
  a scan flagged by its strongest kind alone that is each kind's −log p staying below −log q
  (exact for independent kinds, conservative for positively dependent ones). Unlike
  mean + 3·std of a heavy-tailed score, a planted outlier in the validation split cannot drag
  it upwards. Whether it holds on real anatomy is measured, not assumed
  (``tests/ctae_core/test_calibration_real.py``, README "Detection quality").
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ctae_core.evidence_kinds import SCORED_EVIDENCE

RULES = ("mean_std", "mad", "percentile", "pvalue")
EVIDENCE_KINDS = len(SCORED_EVIDENCE)
"""Kinds of evidence the outlier score combines (``ctae_core.evidence_kinds.SCORED_EVIDENCE``)."""
DEFAULT_P = 0.003
"""The ``pvalue`` rule's default p (``ctae score --p``; T 8.52 over the fifteen kinds scored since
stop 44, 8.45 over the fourteen of stops 37–43, 8.37 over the thirteen before stop 37). On the eighteen real-anatomy seeds of stop 26
(docs/detection-history.md, "Choosing ``ctae score --p``"): precision 0.97, recall 0.56, 0.3 % of
inliers flagged (the worst seed 1.7 %); at 0.005 recall 0.60, but two seeds past 1 % and the
real-volume test's 35 inliers (``tests/ctae_core/test_calibration_real.py``) lose two to T; at
0.01 recall 0.67 with six seeds past 1 %."""
MIN_VALIDATION_SCORES = 2


@dataclass(frozen=True)
class ThresholdRule:
    """How T is derived from validation scores; stored with the run.

    Attributes:
        rule: ``mean_std`` | ``mad`` | ``percentile`` | ``pvalue``.
        k: Multiplier of std (``mean_std``) or scaled MAD (``mad``).
        percentile: Percentile in (0, 100) for ``percentile``.
        p: Null probability of exceeding T, for ``pvalue``.
        evidence: Kinds of evidence the score combines, for ``pvalue`` (the
            outlier score's kinds, ``ctae_core.outlier_score.SCORED_EVIDENCE``).
    """

    rule: str = "mean_std"
    k: float = 3.0
    percentile: float = 99.0
    p: float = DEFAULT_P
    evidence: int = EVIDENCE_KINDS

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise ValueError(f"threshold rule must be one of {', '.join(RULES)}, not {self.rule!r}")
        if not np.isfinite(self.k) or self.k < 0:
            raise ValueError(f"threshold k must be a finite number >= 0, not {self.k}")
        if not 0 < self.percentile < 100:
            raise ValueError(f"threshold percentile must lie in (0, 100), not {self.percentile}")
        if not 0 < self.p < 1:
            raise ValueError(f"threshold p must lie in (0, 1), not {self.p}")
        if self.evidence < 1:
            raise ValueError(f"evidence must be >= 1 kind, not {self.evidence}")

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON storage with the run."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ThresholdRule:
        """Inverse of :meth:`to_dict`; unknown keys (extra run facts) are ignored."""
        known = {k: data[k] for k in ("rule", "k", "percentile", "p", "evidence") if k in data}
        return cls(**known)

    def threshold(self, validation_scores: np.ndarray) -> float:
        """T for these validation scores (NaNs ignored).

        Raises:
            ValueError: fewer than two finite validation scores.
        """
        values = _finite(validation_scores)
        if self.rule == "pvalue":
            per_kind = -np.expm1(np.log1p(-self.p) / self.evidence)  # 1 − (1 − p)^(1/n)
            return float(-np.log(per_kind))
        if self.rule == "mean_std":
            return float(values.mean() + self.k * values.std())
        if self.rule == "mad":
            from scipy.stats import median_abs_deviation  # not at CLI start-up

            mad = median_abs_deviation(values, scale="normal")
            return float(np.median(values) + self.k * mad)
        return float(np.percentile(values, self.percentile))

    def describe(self) -> str:
        """Human-readable formula, e.g. ``mean + 3·std``."""
        if self.rule == "mean_std":
            return f"mean + {self.k:g}·std"
        if self.rule == "mad":
            return f"median + {self.k:g}·MAD"
        if self.rule == "pvalue":
            return f"p < {self.p:g} for an inlier, over {self.evidence} calibrated kinds of evidence"
        return f"{self.percentile:g}th percentile"


def flag(scores: np.ndarray, threshold: float) -> np.ndarray:
    """Outlier flags: score strictly above T. A NaN score is never flagged."""
    if not np.isfinite(threshold):
        raise ValueError(f"threshold T must be a finite number, not {threshold}")
    return np.asarray(scores, dtype=np.float64) > threshold


def _finite(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64).ravel()
    values = values[np.isfinite(values)]
    if values.size < MIN_VALIDATION_SCORES:
        raise ValueError(
            f"a threshold needs at least {MIN_VALIDATION_SCORES} finite validation scores, got "
            f"{values.size}; the run's validation split is empty or unscored — score it first"
        )
    return values
