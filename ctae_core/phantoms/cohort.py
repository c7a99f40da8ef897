"""The demo cohort: per-scan specs (subject, geometry, planted type, strength) for a seed.

Each scan's subject and geometry come from its own random stream ``(seed, index)``, so scan
``i`` has the same body whatever the cohort size. The outlier plan is exact: ``round(n * rate)``
outliers, the types dealt round-robin in a seeded order (so every type appears once there are
at least as many outliers as types), and the k-th of m scans of one type gets a strength in
the k-th of m equal bins of [0, 1], so each type has subtle and obvious cases.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ctae_core.phantoms.anatomy import SubjectParams
from ctae_core.phantoms.outliers import INLIER, OUTLIER_TYPES
from ctae_core.phantoms.render import Phantom, ScanGeometry
from ctae_core.phantoms.scan import render_scan
from ctae_core.phantoms.tissues import draw_tissue_hu

LONG_SCAN_FRACTION = 0.03
REVERSED_FRACTION = 0.05


@dataclass(frozen=True)
class SizePreset:
    """How written spacings relate to the scanner-realistic ones of the issue.

    ``demo`` multiplies the in-plane spacing (0.35–0.8 mm) by 4.5 → 1.6–3.6 mm, keeping the
    field of view (the whole chest) while the matrix drops from 512–1400 to 90–280 pixels; and
    maps the slice spacing 0.5–3 mm linearly onto 2.5–3 mm. So 400 demo scans are ~1 GB and
    the 3 mm volume the model sees is close to what a full-size scan gives.
    """

    inplane_factor: float
    slice_low_mm: float
    slice_high_mm: float

    def slice_spacing(self, full_mm: float) -> float:
        """Written slice spacing for a scanner slice spacing ``full_mm`` in [0.5, 3]."""
        return self.slice_low_mm + (full_mm - 0.5) / 2.5 * (self.slice_high_mm - self.slice_low_mm)


SIZES = {"demo": SizePreset(4.5, 2.5, 3.0), "full": SizePreset(1.0, 0.5, 3.0)}
_SLICE_CHOICES_MM = (0.5, 0.625, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0)
_SLICE_WEIGHTS = (0.2, 0.15, 0.15, 0.15, 0.05, 0.1, 0.1, 0.05, 0.05)


@dataclass(frozen=True)
class ScanSpec:
    """Everything that decides one scan of the cohort."""

    index: int
    seed: int
    truth: str = INLIER
    strength: float = 0.0
    long_scan: bool = False
    reversed_order: bool = False
    size: str = "demo"

    @property
    def source_path(self) -> str:
        """Series folder relative to the cohort root (says nothing about the truth)."""
        return f"scan_{self.index:04d}"

    def rng(self, stream: int) -> np.random.Generator:
        """Random stream ``stream`` of this scan (0: subject, 1: geometry, 2: header)."""
        return np.random.default_rng([self.seed, self.index, stream])


def draw_subject(rng: np.random.Generator) -> SubjectParams:
    """An adult's chest: size, fat, position on the table, heart, HU per tissue, noise."""
    width = rng.uniform(135.0, 180.0)
    depth = min(rng.uniform(90.0, 125.0), 0.82 * width)
    centre = (rng.normal(0, 8.0), rng.normal(0, 8.0), rng.uniform(-350.0, 50.0))
    period = rng.uniform(24.0, 29.0)
    return SubjectParams(
        half_width_mm=width,
        half_depth_mm=depth,
        fat_mm=rng.uniform(6.0, 35.0),
        muscle_mm=rng.uniform(8.0, 15.0),
        centre_xyz_mm=centre,
        table_top_y_mm=centre[1] + depth + 1.0,
        heart_scale=rng.uniform(0.88, 1.15),
        heart_yaw_deg=rng.uniform(30.0, 50.0),
        heart_pitch_deg=rng.uniform(15.0, 35.0),
        aorta_radius_mm=rng.uniform(13.0, 17.0),
        spine_period_mm=period,
        spine_phase_mm=rng.uniform(0.0, period),
        rib_drop_mm=rng.uniform(50.0, 80.0),
        tissue_hu=draw_tissue_hu(rng),
        noise_sd_hu=rng.uniform(10.0, 40.0),
        anatomy_seed=int(rng.integers(2**31)),
    )


def draw_geometry(
    rng: np.random.Generator, params: SubjectParams, size: str, long_scan: bool
) -> ScanGeometry:
    """Field of view around the whole chest, spacing for ``size``, CCTA or long z coverage."""
    preset = _preset(size)
    reach = params.half_width_mm + abs(params.centre_xyz_mm[0])
    fov = float(np.clip(2.0 * reach + rng.uniform(20.0, 60.0), 320.0, 500.0))
    full_slice = float(rng.choice(_SLICE_CHOICES_MM, p=_SLICE_WEIGHTS))
    if long_scan:
        length, top = rng.uniform(300.0, 800.0), rng.uniform(150.0, 260.0)
    else:
        length, top = rng.uniform(100.0, 140.0), rng.uniform(55.0, 85.0)
    return ScanGeometry(
        fov_mm=fov,
        spacing_xy_mm=rng.uniform(0.35, 0.8) * preset.inplane_factor,
        spacing_z_mm=preset.slice_spacing(full_slice),
        w_top_mm=top,
        length_mm=length,
    )


def _preset(size: str) -> SizePreset:
    if size not in SIZES:
        raise ValueError(f"size must be one of {sorted(SIZES)}, not {size!r}")
    return SIZES[size]


def plan_cohort(
    n: int, seed: int = 0, outlier_rate: float = 0.05, size: str = "demo"
) -> list[ScanSpec]:
    """The specs of an ``n``-scan cohort with ``round(n * outlier_rate)`` planted outliers.

    Raises:
        ValueError: ``n`` < 1, ``outlier_rate`` outside [0, 1], or an unknown ``size``.
    """
    if n < 1:
        raise ValueError(f"--n must be at least 1, not {n}")
    if not 0.0 <= outlier_rate <= 1.0:
        raise ValueError(f"--outlier-rate must be in [0, 1], not {outlier_rate}")
    _preset(size)
    rng = np.random.default_rng([seed, 2**20])
    n_outliers = int(round(n * outlier_rate))
    names = list(OUTLIER_TYPES)
    order = [names[i] for i in rng.permutation(len(names))]
    types = [order[k % len(order)] for k in range(n_outliers)]
    strengths = _strengths(types, rng)
    truth = [INLIER] * n
    strength = [0.0] * n
    for slot, index in enumerate(rng.choice(n, size=n_outliers, replace=False)):
        truth[index], strength[index] = types[slot], strengths[slot]
    long_scans = set(rng.choice(n, size=int(round(n * LONG_SCAN_FRACTION)), replace=False))
    reversed_ = set(rng.choice(n, size=int(round(n * REVERSED_FRACTION)), replace=False))
    return [
        ScanSpec(i, seed, truth[i], round(strength[i], 3), i in long_scans, i in reversed_, size)
        for i in range(n)
    ]


def _strengths(types: list[str], rng: np.random.Generator) -> list[float]:
    """The k-th of m scans of a type draws its strength from [k/m, (k+1)/m)."""
    result = [0.0] * len(types)
    for name in sorted(set(types)):
        slots = [i for i, t in enumerate(types) if t == name]
        for k, slot in enumerate(rng.permutation(slots)):
            result[slot] = float((k + rng.uniform()) / len(slots))
    return result


def render_spec(spec: ScanSpec) -> Phantom:
    """Render the scan ``spec`` describes (deterministic for the spec)."""
    params = draw_subject(spec.rng(0))
    geometry = draw_geometry(spec.rng(1), params, spec.size, spec.long_scan)
    return render_scan(
        params, geometry, spec.truth, spec.strength, seed=spec.seed * 100003 + spec.index
    )
