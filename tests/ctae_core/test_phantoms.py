"""The phantom generator: tissue HU, metal only where planted, outliers visible at 3 mm, mix."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import numpy as np
import pytest
from scipy.ndimage import binary_erosion

from ctae_core.io.resample import resample_isotropic
from ctae_core.phantoms import (
    INLIER,
    METAL_TYPES,
    OUTLIER_TYPES,
    TISSUE_HU_RANGES,
    ScanGeometry,
    Tissue,
    draw_subject,
    plan_cohort,
    render_scan,
    render_spec,
)
from ctae_core.stats import check_plausible_hu
from ctae_core.volume import Volume

# The coarsest demo grid (3.6 mm in-plane, 3 mm slices): the hardest case for visibility.
COARSE = ScanGeometry(
    fov_mm=420.0, spacing_xy_mm=3.6, spacing_z_mm=3.0, w_top_mm=70.0, length_mm=120.0
)


def _subject(seed: int):
    return draw_subject(np.random.default_rng([seed, 0]))


def _at_3mm(phantom) -> np.ndarray:
    volume = Volume(phantom.hu, phantom.spacing_zyx_mm, phantom.origin_xyz_mm)
    return resample_isotropic(volume, 3.0).hu


@pytest.fixture(scope="module")
def inliers():
    """Three inlier subjects on the coarse grid (the comparisons below reuse them)."""
    return {seed: render_scan(_subject(seed), COARSE, INLIER, 0.0, seed) for seed in (1, 2, 3)}


def test_subjects_draw_tissue_means_across_their_ranges_and_link_the_heart():
    """50 subjects spread over each tissue's range (a draw stuck at one value fails), and the
    right heart and lung vessels follow the left heart as the contrast timing says."""
    drawn = np.array([_subject(seed).tissue_hu for seed in range(50)])
    assert len({tuple(row) for row in drawn}) == 50
    for tissue, (low, high) in TISSUE_HU_RANGES.items():
        if tissue in (Tissue.AIR, Tissue.LUNG_VESSEL):  # a constant; a mean of two others
            continue
        spread = np.ptp(drawn[:, tissue]) / (high - low)
        assert spread > 0.85, (tissue.name, spread)
    left, right = drawn[:, Tissue.BLOOD_LEFT], drawn[:, Tissue.BLOOD_RIGHT]
    np.testing.assert_array_less(np.clip(0.5 * left, 150, 450) - 1e-9, right)
    np.testing.assert_array_less(right, np.clip(1.15 * left, 150, 450) + 1e-9)
    np.testing.assert_allclose(drawn[:, Tissue.LUNG_VESSEL], np.clip((left + right) / 2, 150, 350))


@pytest.mark.parametrize(
    "tissue",
    [
        Tissue.FAT,
        Tissue.MUSCLE,
        Tissue.LUNG,
        Tissue.MYOCARDIUM,
        Tissue.BLOOD_LEFT,
        Tissue.BLOOD_RIGHT,
        Tissue.TABLE_CORE,
        Tissue.AIR,
    ],
)
def test_rendered_tissue_hu_matches_its_range(inliers, tissue):
    """Median HU in each tissue's interior (noise and blur included) lies in its range."""
    phantom = inliers[1]
    interior = binary_erosion(phantom.labels == tissue, iterations=1)
    assert interior.sum() > 50, f"{tissue.name} has only {interior.sum()} interior voxels"
    low, high = TISSUE_HU_RANGES[tissue]
    median = float(np.median(phantom.hu[interior]))
    assert low - 12 <= median <= high + 12, (tissue.name, median)


def test_bone_spans_300_to_1500_hu(inliers):
    phantom = inliers[2]
    bone = np.isin(phantom.labels, [Tissue.CORTICAL_BONE, Tissue.CANCELLOUS_BONE])
    values = phantom.hu[binary_erosion(bone)]
    assert 300 <= np.percentile(values, 10) and np.percentile(values, 99) <= 1500 + 3 * 40


def test_lungs_heart_spine_and_table_are_where_anatomy_puts_them(inliers):
    labels = inliers[3].labels
    lung_cols = np.nonzero(labels == Tissue.LUNG)[2]
    centre = labels.shape[2] / 2
    assert (lung_cols < centre).sum() > 0.3 * lung_cols.size  # both lungs present
    assert (lung_cols > centre).sum() > 0.2 * lung_cols.size
    rows = {
        t: np.mean(np.nonzero(labels == t)[1])
        for t in (Tissue.BLOOD_LEFT, Tissue.CANCELLOUS_BONE, Tissue.TABLE_SHELL)
    }
    # anterior heart, posterior spine, table behind the patient (rows run to posterior)
    assert rows[Tissue.BLOOD_LEFT] < rows[Tissue.CANCELLOUS_BONE] < rows[Tissue.TABLE_SHELL]


def test_inliers_have_no_metal_at_any_spacing(inliers):
    for seed, phantom in inliers.items():
        assert phantom.hu.max() < 3000, seed
        assert _at_3mm(phantom).max() < 3000, seed


@pytest.mark.parametrize("name", sorted(METAL_TYPES))
@pytest.mark.parametrize("strength", [0.0, 1.0])
def test_metal_types_show_metal_at_3mm(name, strength):
    phantom = render_scan(_subject(4), COARSE, name, strength, seed=4)
    at_3mm = _at_3mm(phantom)
    assert at_3mm.max() > 3000, (name, strength, int(at_3mm.max()))
    assert (at_3mm > 3000).sum() >= 1 + 4 * strength  # obvious cases carry more metal


def _body_shift_x(labels: np.ndarray, spacing_mm: float) -> float:
    body = (labels != Tissue.AIR) & (labels != Tissue.TABLE_SHELL) & (labels != Tissue.TABLE_CORE)
    return float(np.mean(np.nonzero(body)[2]) * spacing_mm)


def test_subtle_outliers_still_differ_from_their_inlier_at_3mm(inliers):
    base = inliers[1]
    params = _subject(1)
    clean = _at_3mm(render_scan(replace(params, noise_sd_hu=0.0), COARSE, INLIER, 0.0, 1))
    body = clean > -900

    def noise_at_3mm(phantom) -> float:
        return float((_at_3mm(phantom).astype(float) - clean)[body].std())

    noisiest_inlier = render_scan(replace(params, noise_sd_hu=40.0), COARSE, INLIER, 0.0, 1)
    subtle_noise = render_scan(params, COARSE, "heavy_noise", 0.0, seed=1)
    assert noise_at_3mm(subtle_noise) > 1.5 * noise_at_3mm(noisiest_inlier)
    streaks = render_scan(params, COARSE, "streak_artefact", 0.0, seed=1)
    assert np.abs(_at_3mm(streaks).astype(float) - _at_3mm(base)).max() > 60
    plain = render_scan(params, COARSE, "non_contrast", 0.0, seed=1)
    assert np.median(plain.hu[binary_erosion(plain.labels == Tissue.BLOOD_LEFT)]) < 260
    moved = render_scan(params, COARSE, "off_centre", 0.0, seed=1)
    shift = _body_shift_x(moved.labels, 3.6) - _body_shift_x(base.labels, 3.6)
    assert abs(shift) > 40
    cable = render_scan(params, COARSE, "external_cable", 0.0, seed=1)
    assert (cable.hu[cable.labels == Tissue.FOREIGN] > 500).sum() > 10


def test_truncated_fov_cuts_the_body_and_inliers_are_not_cut(inliers):
    def cut_fraction(labels: np.ndarray) -> float:
        body = (labels != Tissue.AIR) & (labels < Tissue.TABLE_SHELL)
        return float(np.mean(body[:, :, 0].any(axis=1) | body[:, :, -1].any(axis=1)))

    assert cut_fraction(inliers[1].labels) == 0.0
    cut = render_scan(_subject(1), COARSE, "truncated_fov", 0.0, seed=1)
    assert cut_fraction(cut.labels) > 0.9
    assert cut.hu.shape[2] < inliers[1].hu.shape[2]


def test_arms_down_put_arms_beside_the_body(inliers):
    arms = render_scan(_subject(1), COARSE, "arms_down", 1.0, seed=1)
    extra_bone = (arms.labels == Tissue.CORTICAL_BONE).sum() - (
        inliers[1].labels == Tissue.CORTICAL_BONE
    ).sum()
    assert extra_bone > 100  # two humeri along the whole scan


@pytest.mark.parametrize("strength, low, high", [(0.1, 1, 1), (0.4, 2, 2), (0.9, 4, 40)])
def test_missing_slab_size_follows_strength(strength, low, high):
    phantom = render_scan(_subject(5), COARSE, "missing_slab", strength, seed=5)
    planes = phantom.effects.dropped_planes
    assert low <= len(planes) <= high
    assert planes == tuple(range(planes[0], planes[0] + len(planes)))
    assert 0 < planes[0] and planes[-1] < phantom.hu.shape[0] - 1  # a gap, not a shorter scan


@pytest.mark.parametrize("strength", np.linspace(0.0, 1.0, 11))
def test_wrong_rescale_offset_grows_with_strength_and_stays_ingestible(inliers, strength):
    phantom = render_scan(_subject(6), COARSE, "wrong_rescale", strength, seed=6)
    offset = phantom.effects.intercept_offset_hu
    assert abs(offset) == pytest.approx(120 + 904 * strength, abs=1)
    # ingest refuses a volume whose air sits above -500 HU; the shifted inlier must pass
    check_plausible_hu(inliers[1].hu + offset, f"wrong_rescale at strength {strength}")


def test_type_mix_follows_the_requested_rate():
    specs = plan_cohort(400, seed=0, outlier_rate=0.05)
    counts = Counter(s.truth for s in specs)
    assert counts[INLIER] == 380
    assert set(counts) - {INLIER} == set(OUTLIER_TYPES)  # all 13 types among 20 outliers
    assert all(counts[t] in (1, 2) for t in OUTLIER_TYPES)
    for name in OUTLIER_TYPES:
        strengths = sorted(s.strength for s in specs if s.truth == name)
        if len(strengths) == 2:
            assert strengths[0] < 0.5 <= strengths[1]  # one subtle, one obvious
    assert sum(s.long_scan for s in specs) == 12
    assert sum(s.reversed_order for s in specs) == 20
    assert Counter(s.truth for s in plan_cohort(40, 0, 0.15))[INLIER] == 34
    assert all(s.truth != INLIER for s in plan_cohort(30, 0, 1.0))


def test_cohort_is_deterministic_per_seed():
    assert plan_cohort(50, seed=3) == plan_cohort(50, seed=3)
    assert plan_cohort(50, seed=3, outlier_rate=0.3) != plan_cohort(50, seed=4, outlier_rate=0.3)
    spec = replace(plan_cohort(3, seed=9)[1], size="demo")
    first, second = render_spec(spec), render_spec(spec)
    assert np.array_equal(first.hu, second.hu) and first.spacing_zyx_mm == second.spacing_zyx_mm


def test_demo_sizes_cover_the_chest_and_stay_small():
    specs = plan_cohort(60, seed=2, outlier_rate=0.0)
    shapes = []
    for spec in specs[:6]:
        phantom = render_spec(spec)
        sz, sy, sx = phantom.spacing_zyx_mm
        assert 1.5 <= sx <= 3.6 and 2.5 <= sz <= 3.0
        assert 320 <= phantom.hu.shape[2] * sx <= 505  # the whole chest fits the field of view
        shapes.append(phantom.hu.size)
    assert np.mean(shapes) * 2 < 4e6  # bytes per CCTA-length scan: 400 scans stay near 1 GB


@pytest.mark.parametrize("bad", [dict(n=0), dict(n=5, outlier_rate=1.5), dict(n=5, size="huge")])
def test_plan_rejects_bad_arguments(bad):
    with pytest.raises(ValueError, match="must"):
        plan_cohort(**bad)


def test_unknown_truth_names_the_known_types():
    with pytest.raises(ValueError, match="spinal_hardware"):
        render_scan(_subject(0), COARSE, "alien", 0.5)
