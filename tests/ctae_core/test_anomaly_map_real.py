"""The anomaly map on real anatomy: a small object on a real chest stands above the error a
blurring model makes along every real edge, and the map's hottest region finds it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from ctae_core.anomaly_map import anomaly_map, hottest_region, hottest_regions
from ctae_core.io.resample import resample_isotropic
from ctae_core.localisation import NEAR_MM, distance_to_mask_mm
from ctae_core.real_cohort import insert_anomaly, render_variant
from ctae_core.volume import Volume

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
CHEST = "real-ct-anatomy/lungpetctdx-A0001-philips"  # one acquisition, kernels B and L


def _blurring_model(stored: np.ndarray) -> np.ndarray:
    """What a model that knows anatomy only coarsely returns: the scan blurred by one voxel,
    never brighter than bone (it has not seen metal)."""
    return gaussian_filter(np.clip(stored, -1024, 1500), 1.0)


CUT_FACE_MISS = pytest.mark.xfail(strict=True, reason=(
    "the cable runs through the whole scan; away from the cut faces it stands 2,343 HU above its "
    "surroundings, below a real 2,964 HU voxel of the sharp kernel L (2,569 HU) that this model "
    "cannot reproduce either; until stop 33 it was found on a cut face, where the peak is no "
    "longer sought"))


def _chest_with(kernel: str, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """A re-posed variant of the real chest of ``kernel`` with ``kind`` inserted, on the stored
    3 mm grid: (HU, the object's mask)."""
    root = SHARED / CHEST
    if not root.is_dir():
        pytest.skip(f"real CT data not found at {root}; it is present in CI")
    from jobs.demo_data_real import find_bases, read_base

    bases, sources = find_bases([root])
    assert sorted(b.name.rsplit("/", 1)[-1] for b in bases) == ["kernelB", "kernelL"]
    base = next(b for b in bases if b.name.endswith(kernel))
    base_hu, spacing = read_base(sources[base.name])
    variant = render_variant(base_hu, spacing, np.random.default_rng(3))
    inserted = insert_anomaly(kind, variant.hu, variant.spacing_zyx_mm, np.random.default_rng(4), 1.0)
    stored = resample_isotropic(Volume(variant.hu, variant.spacing_zyx_mm), 3.0).hu.astype(np.float32)
    mask = resample_isotropic(Volume(inserted.mask.astype(np.float32), variant.spacing_zyx_mm), 3.0).hu > 0.25
    return stored, mask


@pytest.mark.parametrize(("kernel", "kind"), [
    ("kernelB", "ecg_electrodes"), ("kernelL", "ecg_electrodes"), ("kernelB", "external_cable"),
    pytest.param("kernelL", "external_cable", marks=CUT_FACE_MISS),
])
def test_the_hottest_region_is_the_object_not_the_real_edges(kernel, kind):
    stored, mask = _chest_with(kernel, kind)
    error = np.abs(stored - _blurring_model(stored))
    hot = hottest_region(anomaly_map(error, stored > -990, 3.0), 3.0)
    # the |error| smoothed by one voxel, as the map was before stop 32, peaked 107-292 mm away
    # on these two scans (cortex and the couch edge of a sharp kernel)
    assert distance_to_mask_mm(hot.centre_zyx, mask, 3.0) <= NEAR_MM, kernel


def test_a_cable_behind_a_hotter_real_voxel_is_one_of_the_next_regions():
    # the case the test above marks as a miss: the viewer's next region is the cable
    stored, mask = _chest_with("kernelL", "external_cable")
    amap = anomaly_map(np.abs(stored - _blurring_model(stored)), stored > -990, 3.0)
    distances = [distance_to_mask_mm(peak, mask, 3.0) for _, peak, _ in hottest_regions(amap, 3.0)]
    assert len(distances) == 3 and distances[0] > 100  # the real voxel, far from the cable
    assert min(distances[1:]) <= NEAR_MM, distances
