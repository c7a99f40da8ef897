"""Noise, body outline, streaks and rings measured on synthetic HU volumes with known answers."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import median_abs_deviation

from ctae_core.acquisition import (
    PADDING_HU,
    PROFILE_DIRECTIONS,
    acquisition_features,
    ring_contrast,
    streak_contrast,
)
from ctae_core.noise import grouped_median, native_noise_estimate, noise_estimate


def _chest(shape=(12, 80, 80), half_width=25.0, half_depth=18.0, centre_x=40.0, arm=False,
           noise=0.0, seed=0) -> np.ndarray:
    """Air with a soft-tissue ellipse (40 HU), optionally an arm beside it, and Gaussian noise
    everywhere (air included, as in a CT)."""
    _, y, x = np.ogrid[: shape[0], : shape[1], : shape[2]]
    vol = np.full(shape, -1000.0)
    body = ((x - centre_x) / half_width) ** 2 + ((y - 40.0) / half_depth) ** 2 <= 1
    if arm:
        body = body | ((x - (centre_x + half_width + 6)) ** 2 + (y - 40.0) ** 2 <= 8**2)
    vol[np.broadcast_to(body, shape)] = 40.0
    vol += np.random.default_rng(seed).normal(0.0, noise, shape)
    return vol.astype(np.int16)


def test_noise_estimate_recovers_the_noise_sd_inside_the_body():
    for sd in (10.0, 30.0, 60.0):
        assert noise_estimate(_chest(noise=sd)) == pytest.approx(sd, rel=0.08)


def test_noise_estimate_of_whole_hu_follows_the_noise_between_whole_steps():
    # stored volumes are whole HU: the plain MAD of their differences moves in 1-HU steps (the
    # estimate in ~1.05 HU steps); the grouped median follows noise SDs a fraction of a step apart
    sds = (8.0, 8.25, 8.5, 8.75, 9.0)
    estimates = [noise_estimate(_chest(shape=(24, 80, 80), noise=sd, seed=3)) for sd in sds]
    assert estimates == pytest.approx(sds, rel=0.02)
    assert all(a < b for a, b in zip(estimates, estimates[1:], strict=False))
    plain = {round(float(median_abs_deviation(np.diff(_chest(shape=(24, 80, 80), noise=sd, seed=3)
                                                      .astype(np.float32), axis=2)[:, 30:50, 25:55],
                                              axis=None)), 3) for sd in sds}
    assert len(plain) <= 3  # what the plain median makes of the same five noise levels
    # a float volume that is not whole HU keeps the plain MAD
    rng = np.random.default_rng(4)
    smooth = _chest(noise=0.0).astype(np.float32) + rng.normal(0.0, 8.3, (12, 80, 80)).astype(np.float32)
    assert noise_estimate(smooth) == pytest.approx(8.3, rel=0.03)


def test_grouped_median_interpolates_within_the_median_bin():
    assert grouped_median(np.array([0, 1, 1, 2, 2, 2, 3])) == pytest.approx(1.5 + 0.5 / 3)
    assert grouped_median(np.zeros(10)) == pytest.approx(0.25)  # half of 0's half-wide bin
    assert grouped_median(np.array([4.0, 4.0])) == pytest.approx(4.0)
    with pytest.raises(ValueError, match="at least one value"):
        grouped_median(np.array([], dtype=np.int64))


def test_noise_on_the_acquired_grid_is_the_noise_that_3_mm_averages_away():
    # a 0.75 mm chest with 40 HU of noise: resampled to 3 mm (as ingest stores it) the estimate
    # is under 0.4 of it; on the acquired grid (8 of its 48 planes) it is the noise, and twice
    # the noise reads twice as noisy there — where the both-pixels-in-the-window pick of
    # noise_estimate drops the pairs that differ most and reads it as 1.7 times
    from ctae_core.io.resample import resample_isotropic
    from ctae_core.volume import Volume

    native = {sd: _chest(shape=(48, 160, 160), half_width=60.0, half_depth=45.0, centre_x=80.0,
                         noise=sd, seed=5) for sd in (40.0, 80.0)}
    stored = resample_isotropic(Volume(native[40.0], (0.75, 0.75, 0.75)), 3.0).hu
    assert noise_estimate(stored) < 0.4 * 40.0
    assert native_noise_estimate(native[40.0]) == pytest.approx(40.0, rel=0.05)
    assert native_noise_estimate(native[80.0]) == pytest.approx(80.0, rel=0.05)
    assert noise_estimate(native[80.0]) / noise_estimate(native[40.0]) < 1.8
    with pytest.raises(ValueError, match=r"\(z, y, x\) volume"):
        native_noise_estimate(native[40.0][0])
    assert np.isnan(native_noise_estimate(np.full((4, 20, 20), -1000, dtype=np.int16)))


def test_noise_estimate_is_nan_without_soft_tissue():
    assert np.isnan(noise_estimate(np.full((4, 20, 20), -1000, dtype=np.int16)))


def test_a_body_inside_the_image_has_no_border_contact_and_a_symmetric_outline():
    features = acquisition_features(_chest(noise=10.0), 3.0)
    assert features.body_edge_mm == 0.0
    profile = np.asarray(features.body_profile)
    assert profile.shape == (PROFILE_DIRECTIONS,) and profile.mean() == pytest.approx(1.0)
    # an ellipse 25 × 18 voxels: widest left and right (directions 0 and 16), narrowest at ±90°
    assert profile[[0, 16]].min() > 1.1 and profile[[8, 24]].max() < 0.9
    np.testing.assert_allclose(profile[:16], profile[16:], atol=0.06)


def test_an_arm_makes_the_outline_lopsided_and_a_cut_body_touches_the_border():
    plain = np.asarray(acquisition_features(_chest(), 3.0).body_profile)
    arm = np.asarray(acquisition_features(_chest(arm=True), 3.0).body_profile)
    assert arm[16] - arm[0] > 0.2 > abs(plain[16] - plain[0])  # direction 16: +x, the arm's side
    # centred 15 voxels from the edge: at x = 0 the ellipse spans 2 · 18 · √(1 − (15/25)²) =
    # 28.8 rows, 86 mm at 3 mm (the opening that detaches the couch rounds off a row or two)
    cut = acquisition_features(_chest(centre_x=15.0), 3.0)
    assert cut.body_edge_mm == pytest.approx(3.0 * 28.8, abs=3.0 * 2.5)


def _padded_outside(vol: np.ndarray, radius: float) -> np.ndarray:
    """``vol`` with the stored HU floor in every plane beyond ``radius`` voxels of the image
    centre, as a scanner pads outside its reconstruction circle."""
    _, y, x = np.ogrid[: vol.shape[0], : vol.shape[1], : vol.shape[2]]
    out = vol.copy()
    out[np.broadcast_to(np.hypot(y - 40.0, x - 40.0) > radius, vol.shape)] = PADDING_HU
    return out


def test_a_body_cut_by_the_reconstruction_circle_lies_on_the_field_edge_and_one_inside_does_not():
    # air noise of 30 HU takes a fifth of the air to the floor in any one plane, never one pixel
    # in all twelve: padding is what holds the floor everywhere
    noisy = _chest(noise=30.0)
    assert (noisy <= PADDING_HU).mean() > 0.1
    assert acquisition_features(noisy, 3.0).field_edge_mm == 0.0
    # the 25 × 18 voxel ellipse inside a circle of radius 30: 5 voxels (15 mm) of air between
    assert acquisition_features(_padded_outside(noisy, 30.0), 3.0).field_edge_mm == 0.0
    # a circle of radius 21 cuts both flanks: the arcs of r = 21 inside the ellipse span
    # |sin θ| ≤ 0.67, 2 · 2 · 0.733 · 21 = 62 voxels, and the body within 2 voxels (6 mm) of the
    # padding is a band 2 voxels deep along them
    cut = acquisition_features(_padded_outside(noisy, 21.0), 3.0)
    assert cut.field_edge_mm == pytest.approx(3.0 * 62 * 2, rel=0.15)
    # a smaller circle cuts more of the body
    assert acquisition_features(_padded_outside(noisy, 18.0), 3.0).field_edge_mm > 1.4 * cut.field_edge_mm
    assert cut.body_edge_mm == 0.0  # the image border is nowhere near
    # a body cut by the image border (a small display field, nothing padded) is the outline's
    # evidence, not this one's; so is one cut by a square field padded into a larger image
    border = acquisition_features(_chest(centre_x=15.0, noise=30.0), 3.0)
    assert border.body_edge_mm > 50.0 and border.field_edge_mm == 0.0
    square = noisy.copy()
    square[:, :, :21] = PADDING_HU  # the field ends 19 voxels left of the centre, in the body
    assert acquisition_features(square, 3.0).field_edge_mm == 0.0
    # a wrong rescale 60 HU down clips the air to the floor in every plane: the padding's edge
    # follows the body's outline, no circle
    assert acquisition_features(np.maximum(noisy - 60, PADDING_HU).astype(np.int16), 3.0).field_edge_mm == 0.0


def test_a_volume_without_a_body_gives_nan_and_an_empty_profile():
    features = acquisition_features(np.full((3, 16, 16), -1024, dtype=np.int16), 3.0)
    assert np.isnan(features.noise_hu) and np.isnan(features.body_edge_mm)
    assert features.body_profile == ()
    with pytest.raises(ValueError, match="non-empty"):
        acquisition_features(np.zeros((4, 4)), 3.0)


def _with_streaks(vol: np.ndarray, amplitude: float, planes: slice, turn: float = 0.4) -> np.ndarray:
    """Lines through (40, 40) at three angles, in the given planes, as beam hardening draws
    them (bright and dark, across the whole image); their angles turn by ``turn`` radians from
    one plane to the next, as a helical scan's streaks do (``turn=0``: one straight structure
    through every plane, as anatomy's edges run)."""
    out = vol.astype(np.float32)
    _, y, x = np.ogrid[: vol.shape[0], : vol.shape[1], : vol.shape[2]]
    for plane in range(*planes.indices(vol.shape[0])):
        for k, angle in enumerate((0.3, 1.2, 2.4)):
            angle += turn * plane
            distance = (x - 40.0) * np.sin(angle) - (y - 40.0) * np.cos(angle)
            sign = 1.0 if k % 2 == 0 else -1.0
            out[plane] += sign * amplitude * np.exp(-((distance / 0.8) ** 2))[0]
    return np.clip(out, -1024, None).astype(np.int16)


def _wide_chest(noise: float, seed: int = 0) -> np.ndarray:
    return _chest(shape=(12, 96, 96), half_width=40.0, half_depth=30.0, centre_x=48.0,
                  noise=noise, seed=seed)


def test_streak_contrast_finds_straight_lines_through_the_body_and_not_noise():
    plain = _wide_chest(noise=20.0)
    baseline = streak_contrast(plain, 3.0)
    assert 2.0 < baseline < 5.0  # the largest of many noise-only line differences
    # lines of 40 / 80 HU over 20 HU noise, in 4 of 12 planes, turning from plane to plane
    assert streak_contrast(_with_streaks(plain, 40.0, slice(4, 8)), 3.0) > 2 * baseline
    assert streak_contrast(_with_streaks(plain, 80.0, slice(4, 8)), 3.0) > 3 * baseline
    # noise of another level, the body's own outline and a round organ are not lines
    assert streak_contrast(_wide_chest(noise=60.0, seed=3), 3.0) < 5.0
    organ = plain.astype(np.float32)
    _, y, x = np.ogrid[:12, :96, :96]
    organ[:, (((y - 40) ** 2 + (x - 48) ** 2) <= 12**2)[0]] += 150.0
    assert streak_contrast(organ.astype(np.int16), 3.0) < 1.6 * baseline


def test_a_straight_structure_through_every_plane_is_not_a_streak():
    """Anatomy's straight edges (the spine's, the table's) run on through the neighbouring
    planes, so the search compares each plane's lines with theirs: the same 80 HU lines in
    every plane count for nothing, while they stand out when the planes 6 mm away lack them."""
    plain = _wide_chest(noise=20.0)
    baseline = streak_contrast(plain, 3.0)
    assert streak_contrast(_with_streaks(plain, 80.0, slice(0, 12), turn=0.0), 3.0) < 1.3 * baseline
    assert streak_contrast(_with_streaks(plain, 80.0, slice(4, 5), turn=0.0), 3.0) > 2 * baseline
    # the neighbours are found in mm: at 1.5 mm spacing they lie 4 planes away
    assert streak_contrast(_with_streaks(plain, 80.0, slice(4, 5), turn=0.0), 1.5) > 2 * baseline


def test_the_volume_s_first_and_last_planes_are_compared_with_both_neighbours_or_not_at_all():
    """A plane is searched only where planes 6 mm away lie both above and below it: against one
    neighbour the difference keeps anatomy's steady change along z (a first difference), which
    the mean of both cancels; on real inliers the volume's end planes held their largest
    streaks. A streak in an end plane is read only as half of a searched plane's reference, at
    half its strength; the same streak in a searched plane in full."""
    plain = _wide_chest(noise=20.0)  # 12 planes at 3 mm: planes 2, 4, 7 and 9 are searched
    inside = streak_contrast(_with_streaks(plain, 80.0, slice(4, 5)), 3.0)
    assert inside > 3 * streak_contrast(plain, 3.0)
    for end in (0, 11):
        assert streak_contrast(_with_streaks(plain, 80.0, slice(end, end + 1)), 3.0) < 0.6 * inside
    assert np.isnan(streak_contrast(plain[:4], 3.0))  # no plane with both neighbours


def test_streak_contrast_is_nan_without_soft_tissue_or_a_line_long_enough():
    assert np.isnan(streak_contrast(np.full((4, 30, 30), -1000, dtype=np.int16), 3.0))
    # 20 voxels of tissue across at most: fewer than the 30 a line needs
    assert np.isnan(streak_contrast(np.full((4, 20, 20), 40, dtype=np.int16), 3.0))
    # two planes 3 mm apart hold no plane 6 mm from another to compare with
    plain = _wide_chest(noise=20.0)
    assert np.isnan(streak_contrast(_with_streaks(plain, 80.0, slice(0, 2))[:2], 3.0))


def _with_ring(vol: np.ndarray, amplitude: float, radius: float) -> np.ndarray:
    """A ring about the image centre in every plane, as a miscalibrated detector element
    draws it (one voxel wide, the same sign all the way round)."""
    _, y, x = np.ogrid[: vol.shape[0], : vol.shape[1], : vol.shape[2]]
    r = np.hypot(y - (vol.shape[1] - 1) / 2, x - (vol.shape[2] - 1) / 2)
    return (vol + amplitude * np.exp(-(((r - radius) / 0.6) ** 2))).astype(np.int16)


def test_ring_contrast_finds_a_ring_about_the_centre_and_not_noise_or_an_off_centre_body():
    plain = _chest(shape=(12, 96, 96), half_width=40.0, half_depth=30.0, centre_x=48.0, noise=20.0)
    baseline = ring_contrast(plain)
    assert baseline < 6.0  # the largest of many noise-only radii
    # a 15 HU ring under 20 HU noise: faint to the eye, consistent all the way round
    assert ring_contrast(_with_ring(plain, 15.0, 14.0)) > 3 * baseline
    shifted = _chest(shape=(12, 96, 96), half_width=30.0, half_depth=25.0, centre_x=60.0, noise=20.0)
    assert ring_contrast(shifted) < 6.0  # a body's edge off the centre is no ring
    assert np.isnan(ring_contrast(np.full((4, 30, 30), -1000, dtype=np.int16)))


def test_a_radius_through_the_body_s_flanks_alone_is_no_ring():
    """Beyond a wide body's short half-axis only its flanks lie at that distance from the
    centre: a layer there that keeps its sign from plane to plane (the body's own fat and
    muscle, so inside the body only) is not read as a ring, while the same layer all the way
    round, inside the short half-axis, is."""
    plain = _chest(shape=(12, 96, 96), half_width=44.0, half_depth=22.0, centre_x=47.5, noise=20.0)
    baseline = ring_contrast(plain)
    inside = plain > -500
    layer = np.where(inside, _with_ring(plain, 15.0, 34.0), plain)  # past the 22-voxel half-depth
    assert ring_contrast(layer) < 1.5 * baseline
    assert ring_contrast(_with_ring(plain, 15.0, 14.0)) > 3 * baseline


def test_a_detector_s_ring_beyond_the_short_half_axis_is_read_through_the_air():
    """A miscalibrated detector element draws its ring across the whole reconstructed field:
    past a wide body's short half-axis it crosses the flanks and the air above and below, where
    no anatomy keeps a sign from plane to plane, so it is read there (since v23). The padding
    outside a reconstruction circle is left out with its edge, a circle about the centre too."""
    plain = _chest(shape=(12, 96, 96), half_width=44.0, half_depth=22.0, centre_x=47.5, noise=20.0)
    baseline = ring_contrast(plain)
    assert ring_contrast(_with_ring(plain, 15.0, 34.0)) > 3 * baseline
    _, y, x = np.ogrid[:12, :96, :96]
    outside = np.broadcast_to(np.hypot(y - 47.5, x - 47.5) > 44.0, plain.shape)
    circled = np.where(outside, -1024, plain).astype(np.int16)  # a scanner's padding, clipped
    assert ring_contrast(circled) < 1.5 * baseline
    # noise added to the padding after reconstruction (as the real-anatomy benchmark's copies
    # have it), clipped at the floor: no pixel stays at the floor in every plane, and the edge
    # is still no ring
    noise = np.random.default_rng(1).normal(0.0, 12.0, plain.shape)
    noisy = np.where(outside, np.maximum(-1024 + noise, -1024), plain).astype(np.int16)
    assert ring_contrast(noisy) < 1.5 * baseline
