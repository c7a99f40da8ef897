from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from ctae_core.calibration import hurdle_z
from ctae_core.native_metal import native_metal_mm3


def _body(spacing: tuple[float, float, float]) -> np.ndarray:
    """A 60 × 120 × 120 mm block of soft tissue (40 HU) with a 30 mm bone (cancellous 300 HU
    inside a 2500 HU rim, as a sharp kernel overshoots at cortex) in air."""
    z, y, x = np.meshgrid(*(np.arange(n) * s for n, s in zip((60, 150, 150), spacing, strict=True)),
                          indexing="ij")
    hu = np.where((np.abs(y - 100) < 60) & (np.abs(x - 100) < 60), 40.0, -1000.0)
    r = np.hypot(y - 100, x - 70)
    hu[r < 15] = 300.0
    hu[(r >= 13.5) & (r < 15)] = 2500.0
    return hu


def test_metal_in_soft_tissue_counts_and_bone_overshoot_does_not():
    spacing = (1.0, 0.8, 0.8)
    hu = _body(spacing)
    assert (hu >= 2000).sum() > 5000  # the cortex alone holds thousands of dense voxels
    assert native_metal_mm3(hu, spacing) == 0.0
    z, y, x = np.meshgrid(*(np.arange(n) * s for n, s in zip(hu.shape, spacing, strict=True)), indexing="ij")
    snap = np.hypot(np.hypot(z - 30, y - 100), x - 130) < 2.0  # a 4 mm ECG snap in soft tissue
    hu[snap] = 3000.0
    assert native_metal_mm3(hu, spacing) == pytest.approx(snap.sum() * 0.64)


def test_no_dense_voxel_gives_zero():
    assert native_metal_mm3(np.full((4, 5, 6), 40.0), (2.5, 0.7, 0.7)) == 0.0


def test_hurdle_z_reads_any_metal_as_unusual_where_a_kernel_has_none():
    rng = np.random.default_rng(0)
    smooth = np.zeros(40)  # a smooth kernel: no dense voxel away from bone on any scan
    sharp = np.where(rng.random(40) < 0.5, np.exp(rng.normal(4.5, 1.0, 40)), 0.0)  # overshoot
    values = np.concatenate([smooth, sharp, [np.nan]])
    groups = np.array(["smooth"] * 40 + ["sharp"] * 40 + ["smooth"], dtype=object)
    z = hurdle_z(values, np.isfinite(values), groups)
    assert z[:40].max() < 0 and np.isnan(z[-1])  # none: never evidence
    values[0], values[40] = 400.0, 400.0  # the same metal on each kernel
    z = hurdle_z(values, np.isfinite(values), groups)
    # 1 in 41 scans of the smooth kernel holds any (π ≈ 0.04), in an amount 1.5 SD above the
    # sharp kernel's usual: p ≈ 0.01, against ≈ 0.12 on the sharp kernel
    assert z[0] > norm.isf(0.02) and z[0] > z[40] + 1.0  # more unusual where none is usual
    assert np.mean(z[41:80] > norm.isf(0.05)) < 0.1


def test_the_neighbourhood_mean_is_scipys_uniform_filter():
    from scipy import ndimage

    from ctae_core.native_metal import _mean_of_3x3x3

    rng = np.random.default_rng(3)
    for shape in [(1, 1, 1), (2, 3, 1), (9, 14, 15)]:
        cells = rng.random(shape).astype(np.float32)
        expected = ndimage.uniform_filter(cells, size=3, mode="nearest")
        np.testing.assert_allclose(_mean_of_3x3x3(cells), expected, rtol=0, atol=1e-6)
