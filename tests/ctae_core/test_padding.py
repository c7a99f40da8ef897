"""Padding with normalised air, crops, slabs, resampling, and the inference input they build."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from ctae_core.data import rescale_volume
from ctae_core.inference import InputSpec, abs_error_hu, prepare_input
from ctae_core.padding import AIR_HU, normalised_air, pad_to_size, placement, random_slab, round_up


def test_normalised_air_is_not_zero():
    # zero after normalisation is the mean HU, not background: air must map far below it
    assert normalised_air(-600.0, 400.0) == pytest.approx((-1024 + 600) / 400)


def test_centred_padding_is_deterministic(phantom_hu):
    padded, region, kept = pad_to_size(phantom_hu, (20, 40, 36), fill=AIR_HU)
    assert padded.shape == (20, 40, 36) and padded.dtype == phantom_hu.dtype
    assert region == (slice(2, 18), slice(4, 36), slice(2, 34))
    assert kept == (slice(0, 16), slice(0, 32), slice(0, 32))
    np.testing.assert_array_equal(padded[region], phantom_hu)
    outside = np.ones(padded.shape, bool)
    outside[region] = False
    assert np.all(padded[outside] == -1024)


def test_random_placement_is_seeded_and_inside_the_box():
    starts = [placement((16, 32, 32), (20, 40, 36), np.random.default_rng(s)) for s in range(30)]
    z_starts = {r[0].start for r in starts}
    assert z_starts == {0, 1, 2, 3, 4}  # every legal offset occurs, none beyond
    assert all(r[1].stop <= 40 and r[2].stop <= 36 for r in starts)
    assert starts[7] == placement((16, 32, 32), (20, 40, 36), np.random.default_rng(7))


def test_oversized_scan_is_centre_cropped_with_a_warning(phantom_hu, caplog):
    with caplog.at_level(logging.WARNING):
        padded, region, kept = pad_to_size(phantom_hu, (10, 40, 30), fill=-1024, name="scan-7")
    assert "scan-7" in caplog.text and "centre-cropped" in caplog.text
    assert kept == (slice(3, 13), slice(0, 32), slice(1, 31))
    np.testing.assert_array_equal(padded[region], phantom_hu[kept])


def test_random_slab_and_round_up():
    rng = np.random.default_rng(0)
    windows = [random_slab(40, 16, rng) for _ in range(200)]
    for kept, z_offset in windows:  # the kept slices fill the 16-slice box from z_offset on
        assert 0 <= kept.start < kept.stop <= 40 and z_offset + kept.stop - kept.start <= 16
        assert kept.stop - kept.start >= 8  # overhang at most half a slab
    assert {z for _, z in windows} >= {0, 8} and any(k.stop == 40 for k, _ in windows)
    assert random_slab(10, 16, rng) == (slice(0, 10), None)
    assert round_up((17, 8, 1), 8) == (24, 8, 8)


def test_rescale_to_coarser_grid_averages_blocks():
    hu = np.arange(4 * 6 * 8, dtype=np.int16).reshape(4, 6, 8)
    out = rescale_volume(hu, 3.0, 6.0)
    assert out.shape == (2, 3, 4) and out.dtype == np.float32
    assert out[0, 0, 0] == pytest.approx(hu[:2, :2, :2].mean())
    assert rescale_volume(hu, 3.0, 1.5).shape == (8, 12, 16)


def test_prepare_input_matches_training_normalisation(phantom_hu):
    spec = InputSpec(spacing_mm=3.0, pad_size_zyx=(24, 40, 40), norm_mean_hu=-500.0, norm_std_hu=500.0)
    prep = prepare_input(phantom_hu, 3.0, spec)
    assert prep.x.shape == (24, 40, 40) and prep.x.dtype == np.float32
    np.testing.assert_allclose(prep.x[prep.region], (phantom_hu + 500.0) / 500.0, rtol=1e-6)
    assert prep.x[0, 0, 0] == pytest.approx(spec.pad_value) == pytest.approx(-1.048)
    np.testing.assert_array_equal(prep.hu, phantom_hu.astype(np.float32))
    assert prep.body_mask.sum() == (phantom_hu > -990).sum()
    np.testing.assert_allclose(spec.to_hu(prep.x[prep.region]), prep.hu, atol=1e-3)


def test_abs_error_is_in_hu_over_the_scan_region_only(phantom_hu):
    spec = InputSpec(spacing_mm=3.0, pad_size_zyx=(24, 40, 40), norm_mean_hu=-500.0, norm_std_hu=500.0)
    prep = prepare_input(phantom_hu, 3.0, spec)
    recon = prep.x.copy()
    recon[prep.region] += 0.1  # 0.1 σ everywhere in the scan: 50 HU
    recon[0, 0, 0] += 9.0  # padding: outside the region, never part of the error
    error = abs_error_hu(prep, recon, spec)
    assert error.shape == phantom_hu.shape and error.dtype == np.float32
    np.testing.assert_allclose(error, 50.0, rtol=1e-4)
