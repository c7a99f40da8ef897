"""Padding with normalised air, crops, slabs, resampling, and the inference input they build."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from ctae_core.data import rescale_volume
from ctae_core.inference import InputSpec, abs_error_hu, prepare_input
from ctae_core.padding import (
    AIR_HU,
    mirror_ends,
    normalised_air,
    pad_to_size,
    placement,
    random_slab,
    round_up,
)


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


def test_mirror_ends_reflects_without_repeating_the_edge_slice():
    scan = (np.arange(5)[:, None, None] * np.ones((5, 2, 3))).astype(np.int16)
    extended, added = mirror_ends(scan, 3)
    assert added == 3 and extended.shape == (11, 2, 3) and extended.dtype == np.int16
    assert extended[:, 0, 0].tolist() == [3, 2, 1, 0, 1, 2, 3, 4, 3, 2, 1]
    short, added = mirror_ends(scan[:2], 8)  # as many as the scan has beyond its edge slice
    assert added == 1 and short[:, 0, 0].tolist() == [1, 0, 1, 0]
    single, added = mirror_ends(scan[:1], 8)
    assert added == 0 and single.shape == (1, 2, 3)


def test_a_unet_run_sees_the_scan_mirrored_past_its_ends_and_is_measured_on_the_scan(phantom_hu):
    spec = InputSpec(3.0, (24, 40, 40), -500.0, 500.0, z_multiple=8, fit_box=True, window=192, mirror_z=8,
                     mirror_under_z=32)
    assert InputSpec.from_dict(spec.to_dict()) == spec
    older = {k: v for k, v in spec.to_dict().items() if k not in ("mirror_z", "mirror_under_z")}
    assert InputSpec.from_dict(older).end_mirror(16) == 0  # runs trained before stop 61 keep their air
    long = np.concatenate([phantom_hu, phantom_hu])  # 32 slices: a training cube's side, not mirrored
    as_shipped = prepare_input(long, 3.0, spec)
    assert as_shipped.x.shape == (32, 32, 32) and as_shipped.region[0] == slice(0, 32)
    prep = prepare_input(phantom_hu, 3.0, spec)  # 16 slices + 8 mirrored each end = 32
    assert prep.x.shape == (32, 32, 32) and prep.region[0] == slice(8, 24)
    np.testing.assert_allclose(prep.x[prep.region], (phantom_hu + 500.0) / 500.0, rtol=1e-6)
    np.testing.assert_allclose(prep.x[7], prep.x[9])  # the first slice's mirror, not air
    np.testing.assert_allclose(prep.x[24], prep.x[22])
    np.testing.assert_array_equal(prep.hu, phantom_hu.astype(np.float32))
    recon = prep.x.copy()
    recon[prep.region] += 0.1
    recon[:8] += 9.0  # the mirrored slices are context, never part of the error
    np.testing.assert_allclose(abs_error_hu(prep, recon, spec), 50.0, rtol=1e-4)
    air = prepare_input(phantom_hu, 3.0, InputSpec.from_dict(older))
    assert air.x.shape == (16, 32, 32) and np.all(air.x[:, 0, 0] == pytest.approx(spec.pad_value))
