"""Which real base, which anomaly and which strength each scan of a real-anatomy cohort gets.

Scan ``i`` draws everything from its own stream ``(seed, i)``. The plan is exact:
``round(n * outlier_rate)`` anomalies, types dealt round-robin in a seeded order, the k-th of m
scans of one type at a strength in the k-th of m equal bins of [0, 1]. Inliers cycle through
the inlier bases in a seeded order, so every base is used about equally.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ctae_core.evaluation import INLIER  # the truth label the evaluation judges by
from ctae_core.real_cohort.anomalies import ANOMALY_TYPES, NEEDS_CONTRAST, OTHER_REGION_TYPES


@dataclass(frozen=True)
class BaseVolume:
    """One real volume a cohort is built from (facts only; the voxels are read by the job).

    Attributes:
        name: Path of the volume relative to its root (a stable identifier).
        region: ``trunk`` (chest / abdomen: inlier bases) or ``head_neck``
            (``ctae_core.real_cohort.pose.body_region``).
        contrast: Whether the base holds enough enhanced blood for a non-contrast anomaly.
    """

    name: str
    region: str
    contrast: bool


@dataclass(frozen=True)
class RealScanSpec:
    """Everything that decides one scan of a real-anatomy cohort."""

    index: int
    seed: int
    base: str
    truth: str = INLIER
    strength: float = 0.0

    @property
    def source_path(self) -> str:
        """The scan's folder inside the cohort."""
        return f"real_{self.index:04d}"

    def rng(self, stream: int = 0) -> np.random.Generator:
        """The scan's own random stream (0: pose and acquisition, 1: the anomaly)."""
        return np.random.default_rng([self.seed, self.index, stream])


def plan_real_cohort(bases: list[BaseVolume], n: int, seed: int, outlier_rate: float) -> list[RealScanSpec]:
    """Specs of an ``n``-scan cohort over ``bases`` (at least one ``trunk`` base).

    Types that need another body region or a contrast base are left out when no base offers it.

    Raises:
        ValueError: no trunk base, or ``n`` / ``outlier_rate`` out of range.
    """
    trunk = sorted(b.name for b in bases if b.region == "trunk")
    other = sorted(b.name for b in bases if b.region != "trunk")
    contrast = sorted(b.name for b in bases if b.region == "trunk" and b.contrast)
    if not trunk:
        raise ValueError("a real-anatomy cohort needs at least one chest or abdomen volume as a base")
    if n < 1 or not 0.0 <= outlier_rate <= 1.0:
        raise ValueError(f"need n >= 1 and 0 <= outlier_rate <= 1, got {n}, {outlier_rate}")
    types = [t for t in ANOMALY_TYPES
             if (t not in OTHER_REGION_TYPES or other) and (t not in NEEDS_CONTRAST or contrast)]
    rng = np.random.default_rng([seed, 10_007])
    n_out = int(round(n * outlier_rate))
    order = list(rng.permutation(types))
    dealt = [order[k % len(order)] for k in range(n_out)]
    outlier_at = set(rng.choice(n, size=n_out, replace=False).tolist())
    seen: dict[str, int] = {}
    totals = {t: dealt.count(t) for t in set(dealt)}
    inlier_bases = [trunk[k] for k in rng.permutation(max(n, len(trunk))) % len(trunk)]
    specs, k_out = [], 0
    for i in range(n):
        if i not in outlier_at:
            specs.append(RealScanSpec(i, seed, inlier_bases[i]))
            continue
        kind = str(dealt[k_out])
        k_out += 1
        j = seed_j = seen.get(kind, 0)
        seen[kind] = j + 1
        strength = float((seed_j + rng.uniform()) / totals[kind])
        pool = other if kind in OTHER_REGION_TYPES else contrast if kind in NEEDS_CONTRAST else trunk
        specs.append(RealScanSpec(i, seed, str(pool[int(rng.integers(len(pool)))]), kind,
                                  round(strength, 3)))
    return specs
