from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm, spearmanr

from ctae_core.calibration import hurdle_z
from ctae_core.outlier_score import (
    AcquisitionInputs,
    defect_z,
    enhanced_share,
    local_error_evidence,
    outlier_evidence,
    robust_z,
    size_adjusted_log,
    strongest_evidence,
    tissue_log_shares,
)


def test_robust_z_uses_median_and_mad_of_the_reference():
    values = np.array([1.0, 2.0, 3.0, 4.0, 100.0, 10.0])
    ref = np.array([True, True, True, True, True, False])
    # median 3, MAD 1 → scale 1 / Φ⁻¹(¾) ≈ 1.4826, a normal SD
    np.testing.assert_allclose(robust_z(values, ref), (values - 3.0) * norm.ppf(0.75))


def test_robust_z_of_a_constant_reference_stays_finite():
    values = np.array([5.0, 5.0, 5.0, 9.0])
    z = robust_z(values, np.array([True, True, True, False]))
    assert z.tolist() == [0.0, 0.0, 0.0, 4.0]


def test_strongest_evidence_is_the_largest_upper_tail_evidence_and_skips_nan():
    z = np.array([[0.0, 3.0, np.nan, -2.0], [1.0, np.nan, np.nan, -5.0]])
    out = strongest_evidence(z)
    assert out[0] == pytest.approx(-norm.logsf(1.0))
    assert out[1] == pytest.approx(-norm.logsf(3.0))
    assert np.isnan(out[2])
    assert out[3] == pytest.approx(-norm.logsf(-2.0))  # low values never raise it


def test_defect_z_of_counts_under_the_reference_rate():
    # 20 of 101 reference series miss one slice: more than the share of outliers an uncurated
    # archive may hold (the 15 most broken of 101 left out), so the other six still set the rate
    values = np.array([0.0] * 80 + [1.0] * 20 + [2.0, np.nan])
    ref = np.isfinite(values)
    z = defect_z(values, ref)
    rate = 6.5 / 102  # six defects kept and half a prior one over 101 reference series + 1
    assert z[0] == pytest.approx(norm.isf(1 - 0.5 * np.exp(-rate)))  # nothing missing: z < 0
    assert z[80] == pytest.approx(norm.isf(1 - np.exp(-rate) * (1 + 0.5 * rate)))
    assert z[100] > norm.isf(0.001) > z[80]  # a second defect in one series is far rarer
    assert np.isnan(z[101])


def test_broken_series_in_the_reference_do_not_make_breaks_usual():
    # two broken series among 120 clean ones (an uncurated archive): left out of the rate, so a
    # single missing slice is as unusual as in a clean reference, two slices unusual at p < 0.001
    values = np.array([0.0] * 120 + [1.0, 2.0])
    z = defect_z(values, np.ones(len(values), dtype=bool))
    rate = 0.5 / 123
    assert z[120] == pytest.approx(norm.isf(1 - np.exp(-rate) * (1 + 0.5 * rate)))
    assert z[120] > norm.isf(0.003) and z[121] > norm.isf(0.0001)
    small = defect_z(values[-11:], np.ones(11, dtype=bool))  # under 12 series: nothing left out
    assert small[-1] == pytest.approx(norm.isf(poisson_mid_p(2, 3.5 / 12)))


def poisson_mid_p(k: int, rate: float) -> float:
    from scipy.stats import poisson

    return float(poisson.sf(k, rate) + 0.5 * poisson.pmf(k, rate))


def test_size_adjustment_removes_a_power_law_of_pixel_count():
    rng = np.random.default_rng(0)
    pixels = rng.uniform(2e5, 3e6, 200)
    mse_m = 5.0 * pixels**-0.3 * np.exp(rng.normal(0, 0.05, 200))
    assert spearmanr(pixels, mse_m)[0] < -0.9
    adjusted = size_adjusted_log(mse_m, pixels, np.ones(200, dtype=bool))
    assert abs(spearmanr(pixels, adjusted)[0]) < 0.15
    assert abs(np.median(adjusted)) < 0.02


def _cohort(n: int = 120, seed: int = 0):
    rng = np.random.default_rng(seed)
    pixels = rng.uniform(4e5, 2e6, n)
    mse_m = 0.6 * (pixels / 1e6) ** -0.4 * np.exp(rng.normal(0, 0.1, n))
    latents = rng.normal(0, 1, (n, 8))
    histograms = rng.poisson(1000, (n, 64)).astype(float)
    splits = np.array(["train"] * 80 + ["val"] * 20 + ["test"] * (n - 100))
    return pixels, mse_m, latents, histograms, splits


def test_each_kind_of_evidence_finds_its_own_outlier():
    pixels, mse_m, latents, histograms, splits = _cohort()
    mse_m[100] *= 4.0  # badly reconstructed
    latents[101] += 6.0  # the encoder describes it unlike any training scan
    histograms[102, 3] += 20000  # a spike in one HU bin
    ev = outlier_evidence(mse_m, pixels, latents, histograms, splits != "")
    assert int(np.argmax(ev.mse_m_z)) == 100
    assert int(np.argmax(ev.latent_z)) == 101
    assert int(np.argmax(ev.histogram_z)) == 102
    # MSE_m for its size is measured, not scored (ctae_core.evidence_kinds.UNSCORED_EVIDENCE)
    assert set(np.argsort(ev.outlier_score)[-2:].tolist()) == {101, 102}
    assert ev.outlier_score[100] < ev.outlier_score[101]
    # every scan is the reference: the median scan's z is 0
    assert abs(np.median(ev.mse_m_z)) < 1e-9


def test_an_object_the_model_did_not_reproduce_raises_the_score_on_its_own():
    # the anomaly map's peak is scored since stop 37: a scan whose only sign is one object the
    # model left out (a peak of 1,500 HU where scans of its size peak at ~300 HU) passes T; the
    # same cohort without the local error leaves it an ordinary scan
    from ctae_core.thresholds import ThresholdRule

    pixels, mse_m, latents, histograms, splits = _cohort()
    rng = np.random.default_rng(7)
    local_error = 300.0 * (pixels / 1e6) ** 0.1 * np.exp(rng.normal(0, 0.15, pixels.size))
    local_error[104] = 1500.0
    t = ThresholdRule("pvalue").threshold(np.zeros(2))
    with_map = outlier_evidence(mse_m, pixels, latents, histograms, splits != "", local_error=local_error)
    without = outlier_evidence(mse_m, pixels, latents, histograms, splits != "")
    assert int(np.argmax(with_map.local_error_z)) == 104 and with_map.local_error_z[104] > norm.isf(1e-4)
    assert int(np.argmax(with_map.outlier_score)) == 104 and with_map.outlier_score[104] > t
    assert without.outlier_score[104] < t
    others = np.arange(pixels.size) != 104  # an ordinary peak does not raise the others past T
    assert (with_map.outlier_score[others] < t).all()


def test_an_object_inside_a_scan_whose_archive_carries_leads_stands_out_in_its_own_region():
    # real chest archives hold patients with ECG leads on the skin, whose map peak is the lead
    # (ctae_core.error_regions): an object inserted inside such a scan peaks no higher than the
    # lead, and the whole map's peak leaves it among its peers; the interior's peak, judged
    # among interiors, sets it apart
    rng = np.random.default_rng(11)
    n = 160
    pixels = rng.uniform(0.3e6, 3e6, n)
    lead = np.arange(n) < 64
    interior = 400.0 * np.exp(rng.normal(0, 0.15, n))
    shell = np.where(lead, 1500.0, 450.0) * np.exp(rng.normal(0, 0.15, n))
    interior[5], shell[5] = 1300.0, 1500.0  # a valve inside a scan with a lead
    whole = np.maximum(interior, shell)
    ref = np.ones(n, dtype=bool)
    groups = np.where(np.arange(n) < 80, "sharp chest", "abdomen")  # 80 % of the chests wear leads
    by_peak = local_error_evidence(whole, None, pixels, ref, groups)
    by_region = local_error_evidence(whole, (interior, shell), pixels, ref, groups)
    assert by_peak[5] < np.quantile(by_peak[lead], 0.75)  # an ordinary peak among the leads'
    assert int(np.argmax(by_region)) == 5 and by_region[5] > norm.isf(1e-4)


def test_the_larger_of_two_regions_keeps_one_kinds_null():
    # Šidák for two: an inlier's larger z of two independent regions passes a z no more often
    # than one region's z alone does (the null's own calibration aside), where the plain larger
    # of the two passes it nearly twice as often
    rng = np.random.default_rng(12)
    n = 4000
    pixels = rng.uniform(0.3e6, 3e6, n)
    ref = np.ones(n, dtype=bool)
    interior, shell = (300.0 * np.exp(rng.normal(0, 0.2, n)) for _ in range(2))
    either = local_error_evidence(np.maximum(interior, shell), (interior, shell), pixels, ref)
    one = local_error_evidence(interior, None, pixels, ref)
    plain_larger = np.maximum(one, local_error_evidence(shell, None, pixels, ref))
    past = norm.isf(0.05)
    assert 0.5 * np.mean(one > past) <= np.mean(either > past) <= 1.2 * np.mean(one > past)
    assert np.mean(plain_larger > past) > 1.5 * np.mean(one > past)


def test_tissue_evidence_sees_a_missing_contrast_agent():
    pixels, mse_m, latents, histograms, splits = _cohort()
    contrast = slice(20, 24)  # 256–512 HU: the contrast-filled blood pool
    histograms[:, contrast] *= 8  # every scan enhanced...
    histograms[103, contrast] /= 4  # ...but this one holds a quarter of the contrast voxels
    ev = outlier_evidence(mse_m, pixels, latents, histograms, splits != "")
    assert int(np.argmax(ev.tissue_z)) == 103 and ev.tissue_z[103] > norm.isf(0.001)
    assert int(np.argmax(ev.outlier_score)) == 103


def test_tissue_shares_follow_the_hu_ranges():
    counts = np.zeros((1, 64))
    counts[0, 0] = 500  # air: left out
    counts[0, 3] = 30  # -832 HU: lung
    counts[0, 16] = 60  # 0 HU: soft tissue
    counts[0, 50] = 10  # 2176 HU: metal
    shares = np.exp(tissue_log_shares(counts)[0]) - 1e-4
    np.testing.assert_allclose(shares, [0.3, 0, 0, 0.6, 0, 0, 0, 0.1], atol=1e-12)


def test_missing_histograms_leave_that_evidence_out():
    pixels, mse_m, latents, _, splits = _cohort()
    ev = outlier_evidence(mse_m, pixels, latents, None, splits != "")
    for name in ("histogram_z", "tissue_z", "contrast_z", "shape_z", "noise_z", "streak_z",
                 "integrity_z"):
        assert np.isnan(getattr(ev, name)).all(), name
    assert np.isfinite(ev.outlier_score).all()
    # one kind measured: the scan's p is that kind's p, Šidák-combined with itself as the
    # three-strongest statistic and written on the scale of one of the fifteen kinds
    p = norm.sf(ev.latent_z)
    np.testing.assert_allclose(ev.outlier_score, -np.log(-np.expm1(2 / 15 * np.log1p(-p))), rtol=1e-9)


def test_too_few_reference_scans_give_no_score():
    pixels, mse_m, latents, histograms, _ = _cohort(n=10)
    reference = np.arange(10) < 4
    ev = outlier_evidence(mse_m, pixels, latents, histograms, reference)
    assert np.isnan(ev.outlier_score).all()


def test_outliers_among_the_reference_scans_do_not_hide_themselves():
    # an uncurated archive: 18 of 120 scans (15 %) share one departure, and every scan is the
    # reference; the trimmed, cross-fitted distance still puts every one of them above every
    # inlier, past p < 0.01 under the distances' heavy-tailed null
    pixels, mse_m, latents, histograms, splits = _cohort()
    latents[:18] += 4.0
    ev = outlier_evidence(mse_m, pixels, latents, histograms, splits != "")
    assert ev.latent_z[:18].min() > max(ev.latent_z[18:].max(), norm.isf(0.01))


def test_scans_acquired_alike_are_their_own_reference():
    # a sharp kernel quadruples the noise of a third of the scans: against their own kernel
    # they are not noisy, and a truly noisy scan of that kernel still is
    pixels, mse_m, latents, histograms, splits = _cohort()
    acq = _acquisition(len(splits))
    sharp = np.arange(len(splits)) % 3 == 0
    acq.noise_hu[sharp] *= 4.0
    acq.noise_hu[3] *= 10.0
    groups = np.where(sharp, "siemens|b70f", None)
    pooled = outlier_evidence(mse_m, pixels, latents, histograms, splits != "", acq)
    alike = outlier_evidence(mse_m, pixels, latents, histograms, splits != "", acq, groups)
    assert np.median(pooled.noise_z[sharp]) > 1.5  # against all scans: read as noisy
    assert abs(np.median(alike.noise_z[sharp])) < 0.1  # against their own kernel: usual
    assert np.flatnonzero(sharp & (alike.noise_z > norm.isf(0.001))).tolist() == [3]


def test_a_column_constant_but_for_rounding_keeps_unit_scale():
    # 330 phantoms without a voxel above 1536 HU share one log share; their mean differs from it
    # in the last bit, and dividing a noisy phantom's few such voxels (+0.24 log units) by that
    # rounding error put it at a Mahalanobis distance of 1e27 (12 phantom inliers flagged)
    from ctae_core.distances import standardised

    x = np.column_stack([np.random.default_rng(0).normal(size=331), np.full(331, np.log(1e-4))])
    x[0, 1] = np.log(1e-4 + 2.7e-5)
    fit = np.arange(331) > 0
    assert x[fit, 1].std() > 0  # the rounding error this guards against
    assert standardised(x, fit)[0, 1] == pytest.approx(0.24, abs=0.01)


def test_kernel_labels_that_change_nothing_share_one_centre():
    # phantoms carry random header kernels: 8 labels of 15 scans over one noise distribution.
    # Centring each label on its own 15-scan median would add that median's sampling error to
    # every residual; the shrunk centres stay near the common one, so no label is read as noisy
    from ctae_core.calibration import group_centres, null_z

    rng = np.random.default_rng(3)
    values = rng.standard_t(10, 120) * 0.1 + np.log(12.0)
    labels = np.array([f"vendor|k{i % 8}" for i in range(120)], dtype=object)
    centres = group_centres([values[labels == k] for k in sorted(set(labels))], 10.0)
    assert np.ptp(centres) < 0.3 * np.ptp([np.median(values[labels == k]) for k in set(labels)])
    z = null_z(values, np.ones(120, dtype=bool), labels)
    np.testing.assert_allclose(z, null_z(values, np.ones(120, dtype=bool)), atol=0.25)


def test_a_kernel_name_is_grouped_per_scanner_model_where_enough_scans_share_it():
    from ctae_core.outlier_score import acquisition_groups

    manufacturer = ["Philips"] * 11 + ["SIEMENS", None]
    model = ["Brilliance 16"] * 6 + ["Big Bore"] * 3 + ["iCT", None, "Force", None]
    kernel = ["B"] * 11 + ["Br40", None]
    groups = acquisition_groups(np.array(manufacturer, dtype=object), np.array(kernel, dtype=object),
                                np.array(model, dtype=object))
    assert list(groups[:6]) == ["philips|b|brilliance 16"] * 6
    assert list(groups[6:11]) == ["philips|b"] * 5  # too few per model: the kernel across models
    assert groups[11] == "siemens|br40" and groups[12] is None


def test_short_slabs_are_a_group_of_their_own_where_enough_share_one():
    from ctae_core.outlier_score import acquisition_groups

    kernel = np.array(["B"] * 12 + [None] * 9 + ["C"] * 6, dtype=object)
    manufacturer = np.array(["Philips"] * 12 + [None] * 9 + ["GE"] * 6, dtype=object)
    # Philips: 7 whole chests, 5 slabs; unknown (NIfTI): 4 whole, 5 slabs; GE: 5 whole, 1 slab
    coverage = np.array([320.0] * 7 + [90.0] * 5 + [336.0] * 4 + [72.0] * 5 + [300.0] * 5 + [100.0])
    groups = acquisition_groups(manufacturer, kernel, None, coverage)
    assert list(groups[:12]) == ["philips|b"] * 7 + ["philips|b|short"] * 5
    assert list(groups[12:21]) == [None] * 4 + ["unknown|short"] * 5
    assert list(groups[21:]) == ["ge|c"] * 6  # one slab alone keeps its kernel's group
    assert list(acquisition_groups(manufacturer, kernel, None, None)) == list(
        acquisition_groups(manufacturer, kernel, None, np.full(27, np.nan)))


def test_histogram_evidence_ignores_how_much_air_the_field_of_view_holds():
    pixels, mse_m, latents, histograms, splits = _cohort()
    before = outlier_evidence(mse_m, pixels, latents, histograms, splits != "")
    wider = histograms.copy()
    wider[110, 0] *= 10  # the same body in a larger field of view: only air voxels added
    after = outlier_evidence(mse_m, pixels, latents, wider, splits != "")
    np.testing.assert_allclose(after.histogram_z, before.histogram_z)


def test_the_p_value_rule_counts_every_kind_of_evidence():
    from ctae_core.outlier_score import SCORED_EVIDENCE
    from ctae_core.thresholds import EVIDENCE_KINDS, ThresholdRule

    assert len(SCORED_EVIDENCE) == EVIDENCE_KINDS == ThresholdRule("pvalue").evidence


def test_the_catalog_stores_every_kind_of_evidence_and_the_score():
    """data_catalog may not import ctae_core, so its list of score columns restates EVIDENCE."""
    from ctae_core.outlier_score import EVIDENCE, LOCAL_ERROR_REGIONS
    from data_catalog.scores import EVIDENCE_COLUMNS

    assert EVIDENCE_COLUMNS == (*EVIDENCE, "outlier_score", *LOCAL_ERROR_REGIONS)


def test_exports_name_the_strongest_of_the_kinds_the_score_takes():
    """data_catalog may not import ctae_core, so the snapshot's list restates the score's."""
    from ctae_core.outlier_score import SCORED_EVIDENCE
    from data_catalog.snapshots import SCORED_EVIDENCE_COLUMNS

    assert SCORED_EVIDENCE_COLUMNS == SCORED_EVIDENCE


def test_enhanced_share_counts_contrast_voxels_among_soft_and_enhanced_tissue():
    counts = np.zeros((2, 64))
    counts[:, 0] = 1000  # air: not counted
    counts[:, 16] = 70  # 0–64 HU: water and fat's edge, below soft tissue: not counted
    counts[:, 17] = 60  # 64–128 HU: soft tissue
    counts[:, 18] = 20  # 128–192 HU: blood in the portal-venous phase
    counts[:, 20] = 20  # 256–320 HU: contrast-filled blood in the arterial phase
    counts[:, 30] = 99  # 896 HU: cortical bone, above the enhanced range
    counts[1, 17:28] = 0
    share = enhanced_share(counts)
    assert share[0] == pytest.approx(0.4) and np.isnan(share[1])


def test_contrast_evidence_sees_a_scan_without_contrast():
    pixels, mse_m, latents, histograms, splits = _cohort()
    histograms[:, 18:24] += 800  # every scan enhanced (128–512 HU: blood and organs)...
    histograms[104, 18:24] -= 800  # ...but one
    ev = outlier_evidence(mse_m, pixels, latents, histograms, splits != "")
    assert int(np.argmax(ev.contrast_z)) == 104 and ev.contrast_z[104] > norm.isf(1e-6)


def _acquisition(n: int, seed: int = 1) -> AcquisitionInputs:
    rng = np.random.default_rng(seed)
    profile = 1.0 + 0.05 * rng.normal(size=(n, 32))
    return AcquisitionInputs(
        noise_hu=rng.uniform(10.0, 40.0, n),
        body_shape=np.column_stack([profile, np.zeros(n)]),
        streak_contrast=rng.uniform(4.0, 6.0, n),
        series_defects=np.zeros(n),
    )


def test_acquisition_evidence_finds_noise_a_cut_body_and_a_broken_series():
    pixels, mse_m, latents, histograms, splits = _cohort()
    acq = _acquisition(len(splits))
    acq.noise_hu[105] = 400.0  # heavy noise
    acq.body_shape[106, -1] = 40.0  # the body lies on 40 mm of the image border
    acq.body_shape[107, :8] += 0.6  # an arm widens the outline on one side
    acq.series_defects[108] = 2  # two slices were missing
    acq.streak_contrast[109] = 40.0  # a straight line across the body
    ev = outlier_evidence(mse_m, pixels, latents, histograms, splits != "",
                          acq)
    assert int(np.argmax(ev.noise_z)) == 105
    assert int(np.argmax(ev.streak_z)) == 109
    assert set(np.argsort(ev.shape_z)[-2:].tolist()) == {106, 107}
    assert int(np.argmax(ev.integrity_z)) == 108 and ev.integrity_z[108] > norm.isf(0.001)
    assert set(np.argsort(ev.outlier_score)[-5:].tolist()) == {105, 106, 107, 108, 109}
    # two missing slices in the only broken series among 120: judged by that kind at least (its
    # −log p less log 2, Šidák over the two statistics), and a little more with its next kinds
    strongest = -norm.logsf(ev.integrity_z[108])
    assert strongest - np.log(2) - 1e-9 <= ev.outlier_score[108] < strongest


def test_a_body_on_the_reconstructed_field_s_edge_is_judged_among_scans_acquired_alike():
    # 120 scans in two acquisition groups; 6 of the larger group's have a few mm of body near
    # padding and one of the smaller's (scan 7) 300 mm: judged among scans acquired alike (the
    # hurdle null of the dense objects); a body wholly inside (0 mm) is never evidence
    from dataclasses import replace

    pixels, mse_m, latents, histograms, splits = _cohort()
    edge = np.zeros(len(splits))
    edge[[20, 30, 40, 60, 80, 90]] = [2.0, 3.0, 4.0, 5.0, 6.0, 8.0]
    edge[7] = 300.0
    groups = np.array(["a|b"] * 100 + ["c|d"] * 20, dtype=object)
    groups[7] = "c|d"
    acq = replace(_acquisition(len(splits)), field_edge_mm=edge)
    ev = outlier_evidence(mse_m, pixels, latents, histograms, splits != "", acq, groups=groups)
    assert int(np.argmax(ev.fov_z)) == 7 and ev.fov_z[7] > norm.isf(0.001)
    assert (ev.fov_z[edge == 0] <= 0).all() and (ev.fov_z[edge > 0] > 0).all()
    np.testing.assert_allclose(ev.fov_z, hurdle_z(edge, np.ones(len(edge), dtype=bool), groups))
    # not measured: no evidence of this kind, the rest unchanged
    none = outlier_evidence(mse_m, pixels, latents, histograms, splits != "", _acquisition(len(splits)), groups=groups)
    assert np.isnan(none.fov_z).all() and np.allclose(none.shape_z, ev.shape_z, equal_nan=True)


def test_scans_without_acquisition_facts_lack_only_that_evidence():
    pixels, mse_m, latents, histograms, splits = _cohort()
    acq = _acquisition(len(splits))
    acq.noise_hu[3] = np.nan
    acq.body_shape[3] = np.nan
    ev = outlier_evidence(mse_m, pixels, latents, histograms, splits != "",
                          acq)
    assert np.isnan(ev.noise_z[3]) and np.isnan(ev.shape_z[3]) and np.isfinite(ev.outlier_score[3])
    assert np.isfinite(np.delete(ev.shape_z, 3)).all()


def test_a_group_far_from_the_cohort_is_measured_from_its_own_centre():
    # 100 scans of one acquisition and 20 of another whose features lie far off (an abdomen
    # among chest scans): from the cohort's centre every one of the 20 is farther than the
    # majority's 95th percentile; from its own group's centre they are as near as the majority,
    # and a scan unlike its own group still stands out
    from ctae_core.calibration import group_centred
    from ctae_core.distances import reference_distance

    rng = np.random.default_rng(3)
    x = rng.normal(0.0, 1.0, (121, 8))
    x[100:, 0] += 8.0
    x[120, 3] += 8.0  # unlike its own group as well
    groups = np.array(["chest"] * 100 + ["abdomen"] * 21, dtype=object)
    ref = np.ones(121, dtype=bool)
    plain = reference_distance(x, ref)
    assert plain[100:120].min() > np.quantile(plain[:100], 0.95)
    centred = reference_distance(group_centred(x, ref, groups), ref)
    assert 0.6 < np.median(centred[100:120]) / np.median(centred[:100]) < 1.6
    assert centred[120] > centred[:120].max()
    # without groups (or with one) the features are left as they are
    assert np.array_equal(group_centred(x, ref, np.array(["chest"] * 121, dtype=object)), x)


def test_a_small_copy_s_outline_is_judged_for_its_size_and_a_cut_body_still_stands_out(monkeypatch):
    # a smaller scan covers less of the body, so its outline (and its tissue shares) depart
    # further from its group's centre: on ten real-anatomy seeds within each base (stop 62).
    # Taken relative to the size line, the outline's evidence no longer falls with size, and a
    # body on the image border still stands out, a small one as well as a large one
    from dataclasses import replace

    import ctae_core.outlier_score as score_module

    pixels, mse_m, latents, histograms, splits = _cohort(n=200, seed=3)
    rng = np.random.default_rng(5)
    spread = 0.05 * (pixels / 1e6) ** -0.5
    profile = 1.0 + spread[:, None] * rng.normal(size=(pixels.size, 32))
    acq = replace(_acquisition(pixels.size), body_shape=np.column_stack([profile, np.zeros(pixels.size)]))
    small, large = int(np.argmin(pixels)), int(np.argmax(pixels))
    acq.body_shape[[small, large], -1] = 40.0  # the body on 40 mm of the image border
    normal = np.ones(pixels.size, dtype=bool)
    normal[[small, large]] = False

    ev = outlier_evidence(mse_m, pixels, latents, histograms, splits != "", acq)
    assert abs(spearmanr(ev.shape_z[normal], pixels[normal])[0]) < 0.15
    assert set(np.argsort(ev.shape_z)[-2:].tolist()) == {small, large}
    assert min(ev.shape_z[small], ev.shape_z[large]) > norm.isf(1e-3)

    # the same cohort before stop 62, with the outline on no size line: its evidence fell with size
    monkeypatch.setattr(score_module, "SIZE_LINED_EVIDENCE",
                        tuple(k for k in score_module.SIZE_LINED_EVIDENCE if k != "shape_z"))
    before = outlier_evidence(mse_m, pixels, latents, histograms, splits != "", acq)
    assert spearmanr(before.shape_z[normal], pixels[normal])[0] < -0.5
