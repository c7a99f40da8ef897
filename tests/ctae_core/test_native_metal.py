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


def test_a_few_outliers_with_metal_do_not_teach_a_kernel_that_metal_is_usual():
    # an uncurated reference: a smooth kernel's 40 real scans hold no metal, six inserted objects
    # (a valve, a pacemaker, ...) do; the sharp kernel's overshoot sets the amounts' null
    rng = np.random.default_rng(1)
    smooth = np.concatenate([np.zeros(40), [900.0, 1400.0, 1600.0, 2500.0, 4000.0, 7600.0]])
    sharp = np.where(rng.random(46) < 0.5, np.exp(rng.normal(4.5, 1.0, 46)), 0.0)
    values = np.concatenate([smooth, sharp])
    groups = np.array(["smooth"] * 46 + ["sharp"] * 46, dtype=object)
    z = hurdle_z(values, np.ones(len(values), dtype=bool), groups)
    # counted as usual they would make π = 6.5 / 47; with 15 % of the group left out of the
    # positives, π = 0.5 / 47 and each object stands out
    assert z[40:46].min() > norm.isf(0.0001)  # 3.7; counted as usual 3.0
    assert np.mean(z[46:][sharp > 0] > norm.isf(0.01)) < 0.1  # the overshoot stays usual


def test_the_amount_is_judged_among_positives_acquired_alike():
    # two kernels with positives on half their scans: a sharp kernel's overshoot (~100 mm³) and
    # an archive whose own dense voxels run ~600 mm³; a valve of 1500 mm³ on the sharp kernel is
    # 15 times its kernel's usual amount but only 2.5 times the pooled one
    rng = np.random.default_rng(2)

    def kernel(n: int, median: float) -> np.ndarray:
        return np.where(rng.random(n) < 0.5, median * np.exp(rng.normal(0.0, 0.8, n)), 0.0)

    values = np.concatenate([kernel(60, 100.0), kernel(60, 600.0), [1500.0]])
    groups = np.array(["sharp"] * 60 + ["dense"] * 60 + ["sharp"], dtype=object)
    z = hurdle_z(values, np.ones(len(values), dtype=bool), groups)
    assert z[-1] > norm.isf(0.005)  # 2.72; under one pooled centre 1.93
    assert z[:120].max() < norm.isf(0.005)  # no inlier of either kernel as unusual (pooled: 2.69)


def test_the_neighbourhood_mean_is_scipys_uniform_filter():
    from scipy import ndimage

    from ctae_core.native_metal import _neighbourhood_mean

    rng = np.random.default_rng(3)
    for shape in [(1, 1, 1), (2, 3, 1), (9, 14, 15)]:
        cells = rng.random(shape).astype(np.float32)
        expected = ndimage.uniform_filter(cells, size=3, mode="nearest")
        every = np.indices(shape).reshape(3, -1)
        got = _neighbourhood_mean(cells, tuple(every)).reshape(shape)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)


def _chest(spacing: tuple[float, float, float]) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """A 60 × 160 × 160 mm field: a round body (radius 55 mm, 40 HU) in air, holding a lung
    (−850 HU, which a sharp kernel's noise takes below −900 in places) and a rib-like bone
    (cancellous 300 HU in a 2500 HU cortex, as a sharp kernel overshoots); and the mm grid."""
    grid = np.meshgrid(*(np.arange(n) * s for n, s in zip((60, 200, 200), spacing, strict=True)),
                       indexing="ij")
    _, y, x = grid
    hu = np.where(np.hypot(y - 80, x - 80) < 55, 40.0, -1000.0)
    lung = np.hypot((y - 80) / 30, (x - 65) / 20) < 1
    hu[lung] = -850.0 + np.random.default_rng(0).normal(0, 60, lung.sum())
    r = np.hypot(y - 80, x - 115)
    hu[r < 8] = 300.0
    hu[(r >= 6.5) & (r < 8)] = 2500.0
    return hu, grid


def test_dense_objects_are_told_apart_by_where_they_lie():
    from ctae_core.native_metal import native_density

    spacing = (1.0, 0.8, 0.8)
    hu, (z, y, x) = _chest(spacing)
    plain = native_density(hu, spacing)
    assert plain.skin_object_mm3 == 0.0 and plain.inner_object_mm3 == 0.0  # bone and lung: none
    electrode = np.hypot(np.hypot(z - 30, y - 24), x - 80) < 2.5  # a snap on the skin, anterior
    hu[electrode] = 1800.0  # partial-volumed below the metal measure's 2000 HU
    valve = (np.abs(np.hypot(y - 80, x - 85) - 6) < 0.8) & (np.abs(z - 30) < 3)  # a ring by the lung
    hu[valve] = 1700.0  # above bone (200–1500 HU), so not read as bone itself
    clip = np.hypot(np.hypot(z - 30, y - 3), x - 3) < 2.0  # something at the image's corner
    hu[clip] = 3000.0
    found = native_density(hu, spacing)
    voxel = float(np.prod(spacing))
    assert found.skin_object_mm3 == pytest.approx(electrode.sum() * voxel)
    assert found.inner_object_mm3 == pytest.approx(valve.sum() * voxel)
    assert found.metal_mm3 == pytest.approx(clip.sum() * voxel)  # the metal measure keeps edges
    assert found.metal_mm3 == native_metal_mm3(hu, spacing)


def test_integer_hu_measures_as_float_hu_does_with_voxels_at_every_level():
    """int16 HU are compared in their own type (a speed-up): the same mm³ as the float volume,
    voxels lying exactly on each level included."""
    from ctae_core.native_metal import (
        AIR_HU,
        BODY_HU,
        BONE_HU,
        DENSE_HU,
        METAL_HU,
        native_density,
    )

    spacing = (1.0, 0.8, 0.8)
    hu, (z, y, x) = _chest(spacing)
    hu = np.round(hu)
    electrode = np.hypot(np.hypot(z - 30, y - 24), x - 80) < 2.5
    hu[electrode] = DENSE_HU
    hu[np.hypot(np.hypot(z - 20, y - 60), x - 60) < 2.0] = METAL_HU
    rng = np.random.default_rng(5)
    for level in (AIR_HU, BODY_HU, *BONE_HU):
        hu[rng.random(hu.shape) < 0.02] = level
    as_float = native_density(hu, spacing)
    assert as_float.skin_object_mm3 > 0 and as_float.metal_mm3 > 0
    assert native_density(hu.astype(np.int16), spacing) == as_float
    assert native_density(hu.astype(np.int32), spacing) == as_float


def test_a_wire_that_steps_between_planes_is_one_long_object_and_snaps_stay_short():
    from ctae_core.native_metal import native_density

    spacing = (3.0, 0.8, 0.8)
    hu, (z, y, x) = _chest(spacing)
    assert native_density(hu, spacing).longest_object_mm <= 3.0 * 2  # no dense object: bone only
    wire = hu.copy()
    for plane in range(wire.shape[0]):  # a dot per plane, 2 pixels further each plane: a wire at ~28°
        wire[plane, 10, 40 + 2 * plane] = 1500.0  # in the air in front of the body
    measured = native_density(wire, spacing)
    assert measured.longest_object_mm == pytest.approx(wire.shape[0] * 3.0)
    snaps = hu.copy()
    for centre in (60.0, 80.0, 100.0):  # three 4 mm snaps on the skin, 20 mm apart
        snaps[np.hypot(np.hypot(z - 30, y - 24), x - centre) < 2.0] = 3000.0
    assert native_density(snaps, spacing).longest_object_mm < 10.0  # 20 mm apart: three objects


def test_connected_cells_are_scipys_26_connected_labels():
    from scipy import ndimage

    from ctae_core.native_metal import _connected_cells

    rng = np.random.default_rng(5)
    for shape, share in [((1, 1, 1), 1.0), ((6, 9, 7), 0.15), ((12, 20, 20), 0.08)]:
        occupied = rng.random(shape) < share
        expected, _ = ndimage.label(occupied, structure=np.ones((3, 3, 3)))
        cells = np.stack(np.nonzero(occupied))
        got = _connected_cells(cells)
        # the same partition: one of ours per scipy label and one scipy label per ours
        pairs = set(zip(got.tolist(), expected[occupied].tolist(), strict=True))
        assert len(pairs) == len(set(got.tolist())) == len(set(expected[occupied].tolist()))


def test_lengths_tied_on_whole_voxels_do_not_narrow_the_amounts_null():
    # a seed's own short dense objects measured in whole voxels of the acquired grid: the
    # positives tie on 3, 5 and 6 mm, their lower half is narrow, and without a floor on the
    # null's scale a 24 mm object of a base's own reads as rare (real seed 333: z 4.7, seven
    # real inliers flagged); a cable of 180 mm stays far out
    lengths = np.array([0.0] * 4 + [3.0] * 4 + [5.0] + [6.0] * 5 + [8, 9, 12, 15, 21, 24, 180.0])
    ref = np.ones(len(lengths), dtype=bool)
    collapsed = hurdle_z(lengths, ref, amount_min_scale=0.0)
    floored = hurdle_z(lengths, ref)
    assert collapsed[-2] > norm.isf(0.001)  # 3.7: the failure the floor is for
    assert floored[-2] < norm.isf(0.003) < norm.isf(1e-4) < floored[-1]  # 2.5; the cable 4.2
    assert np.array_equal(floored[:4], collapsed[:4])  # a 0 is never evidence, as before
