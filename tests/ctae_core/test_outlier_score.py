from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm, spearmanr

from ctae_core.outlier_score import (
    fisher_combination,
    outlier_evidence,
    robust_z,
    size_adjusted_log,
    tissue_log_shares,
)


def test_robust_z_uses_median_and_mad_of_the_reference():
    values = np.array([1.0, 2.0, 3.0, 4.0, 100.0, 10.0])
    ref = np.array([True, True, True, True, True, False])
    # median 3, MAD 1 → scale 1.4826
    np.testing.assert_allclose(robust_z(values, ref), (values - 3.0) / 1.4826)


def test_robust_z_of_a_constant_reference_stays_finite():
    values = np.array([5.0, 5.0, 5.0, 9.0])
    z = robust_z(values, np.array([True, True, True, False]))
    assert z.tolist() == [0.0, 0.0, 0.0, 4.0]


def test_fisher_combination_sums_upper_tail_evidence_and_skips_nan():
    z = np.array([[0.0, 3.0, np.nan], [0.0, np.nan, np.nan]])
    out = fisher_combination(z)
    assert out[0] == pytest.approx(2 * np.log(2))
    assert out[1] == pytest.approx(-norm.logsf(3.0))
    assert np.isnan(out[2])


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
    ev = outlier_evidence(mse_m, pixels, latents, histograms, splits == "train", splits == "val")
    assert int(np.argmax(ev.mse_m_z)) == 100
    assert int(np.argmax(ev.latent_z)) == 101
    assert int(np.argmax(ev.histogram_z)) == 102
    top3 = set(np.argsort(ev.outlier_score)[-3:].tolist())
    assert top3 == {100, 101, 102}
    # the validation split is the reference: its median z is 0
    assert abs(np.median(ev.mse_m_z[splits == "val"])) < 1e-9


def test_tissue_evidence_sees_a_missing_contrast_agent():
    pixels, mse_m, latents, histograms, splits = _cohort()
    contrast = slice(20, 24)  # 256–512 HU: the contrast-filled blood pool
    histograms[:, contrast] *= 8  # every scan enhanced...
    histograms[103, contrast] /= 4  # ...but this one holds a quarter of the contrast voxels
    ev = outlier_evidence(mse_m, pixels, latents, histograms, splits == "train", splits == "val")
    assert int(np.argmax(ev.tissue_z)) == 103 and ev.tissue_z[103] > 5
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
    ev = outlier_evidence(mse_m, pixels, latents, None, splits == "train", splits == "val")
    assert np.isnan(ev.histogram_z).all() and np.isnan(ev.tissue_z).all()
    assert np.isfinite(ev.outlier_score).all()
    np.testing.assert_allclose(
        ev.outlier_score, fisher_combination(np.stack([ev.mse_m_z, ev.latent_z])))


def test_too_few_training_scans_give_no_score():
    pixels, mse_m, latents, histograms, _ = _cohort(n=10)
    splits = np.array(["train"] * 4 + ["val"] * 6)
    ev = outlier_evidence(mse_m, pixels, latents, histograms, splits == "train", splits == "val")
    assert np.isnan(ev.outlier_score).all()


def test_small_validation_split_is_joined_by_training_scans():
    pixels, mse_m, latents, histograms, _ = _cohort(n=40)
    splits = np.array(["train"] * 34 + ["val"] * 3 + ["test"] * 3)
    ev = outlier_evidence(mse_m, pixels, latents, histograms, splits == "train", splits == "val")
    reference = (splits == "train") | (splits == "val")
    assert abs(np.median(ev.mse_m_z[reference])) < 1e-9


def test_histogram_evidence_ignores_how_much_air_the_field_of_view_holds():
    pixels, mse_m, latents, histograms, splits = _cohort()
    before = outlier_evidence(mse_m, pixels, latents, histograms, splits == "train", splits == "val")
    wider = histograms.copy()
    wider[110, 0] *= 10  # the same body in a larger field of view: only air voxels added
    after = outlier_evidence(mse_m, pixels, latents, wider, splits == "train", splits == "val")
    np.testing.assert_allclose(after.histogram_z, before.histogram_z)


def test_the_p_value_rule_counts_every_kind_of_evidence():
    from ctae_core.outlier_score import EVIDENCE
    from ctae_core.thresholds import EVIDENCE_KINDS, ThresholdRule

    assert len(EVIDENCE) == EVIDENCE_KINDS == ThresholdRule("pvalue").evidence
