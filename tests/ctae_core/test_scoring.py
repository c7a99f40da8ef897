"""MSE (eq. 3.3), MSE over the region and MSE_m over the body mask, against hand computations."""

from __future__ import annotations

import numpy as np
import pytest

from ctae_core.errors import EmptyMaskError
from ctae_core.scoring import (
    abs_error_hu,
    body_mask,
    mse_per_sample,
    recon_hu,
    score_scan,
)


@pytest.fixture
def tiny_case():
    """A 2×2×3 padded input; the scan is the 2×2×2 block x[:, :, :2], one voxel of it is air."""
    x = np.zeros((2, 2, 3), dtype=np.float32)
    recon = np.zeros_like(x)
    recon[0, 0, 0] = 1.0   # body voxel, error 1
    recon[1, 1, 1] = 3.0   # air voxel (outside the body mask), error 3
    recon[0, 1, 2] = 2.0   # padding, error 2
    hu = np.full((2, 2, 2), 40.0, dtype=np.float32)
    hu[1, 1, 1] = -1000.0
    region = (slice(0, 2), slice(0, 2), slice(0, 2))
    return x, recon, region, hu


def test_mse_values_equal_hand_computation(tiny_case):
    x, recon, region, hu = tiny_case
    score = score_scan(x, recon, region, hu, norm_std_hu=100.0, error_level_hu=50.0)
    assert score.mse == pytest.approx((1 + 9 + 4) / 12)      # all 12 padded voxels
    assert score.mse_region == pytest.approx((1 + 9) / 8)   # the scan's 8 voxels
    assert score.mse_m == pytest.approx(1 / 7)              # 7 body voxels, one with error 1
    assert score.body_voxels == 7
    assert score.max_error_zyx == (0, 0, 0)                 # the air voxel's 3 does not count
    # |error| of 1 normalised unit = 100 HU > 50 HU in one of 7 body voxels
    assert score.error_fraction == pytest.approx(1 / 7)


def test_error_fraction_follows_the_level(tiny_case):
    x, recon, region, hu = tiny_case
    assert score_scan(x, recon, region, hu, norm_std_hu=100.0, error_level_hu=150.0).error_fraction == 0.0


def test_mse_per_sample_is_eq_3_3(rng):
    x = rng.normal(size=(3, 4, 5, 6)).astype(np.float32)
    recon = rng.normal(size=x.shape).astype(np.float32)
    expected = [np.sum((x[i].astype(np.float64) - recon[i]) ** 2) / x[i].size for i in range(3)]
    np.testing.assert_allclose(mse_per_sample(x, recon), expected, rtol=1e-12)


def test_body_mask_cut_is_strictly_above_minus_990():
    mask = body_mask(np.array([-1024, -990, -989, 0]))
    assert mask.tolist() == [False, False, True, True]


def test_all_air_scan_raises_empty_mask(tiny_case):
    x, recon, region, _ = tiny_case
    with pytest.raises(EmptyMaskError, match="only air"):
        score_scan(x, recon, region, np.full((2, 2, 2), -1024.0), norm_std_hu=100.0)


def test_shape_mismatch_is_reported():
    with pytest.raises(ValueError, match="same shape"):
        score_scan(np.zeros((2, 2, 2)), np.zeros((2, 2, 3)), (slice(None),) * 3,
                   np.zeros((2, 2, 2)), norm_std_hu=1.0)


def test_volumes_back_in_hu():
    recon = np.array([[[-1.0, 0.0, 0.5, -5.0]]], dtype=np.float32)
    out = recon_hu(recon, norm_mean_hu=-300.0, norm_std_hu=400.0)
    assert out.dtype == np.int16
    assert out.tolist() == [[[-700, -300, -100, -1024]]]   # -2300 HU clipped at -1024
    err = abs_error_hu(np.zeros_like(recon), recon, norm_std_hu=400.0)
    assert err.tolist() == [[[400, 0, 200, 2000]]]
