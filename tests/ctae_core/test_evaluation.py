"""Evaluation metrics equal scikit-learn's and hand computations on a fixed example."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr
from sklearn.metrics import average_precision_score, precision_score, recall_score, roc_auc_score

from ctae_core.evaluation import (
    evaluate_by_base,
    evaluate_method,
    histogram_features,
    isolation_forest_scores,
    mahalanobis_scores,
    pixel_stat_features,
    precision_recall_at,
    ranking_metrics,
    size_bias_by_base,
    spearman_interval,
)

TRUTH = np.array(["inlier", "metal", "inlier", "inlier", "fov", "inlier", "metal", "inlier"], dtype=object)
SCORES = np.array([0.10, 0.90, 0.20, 0.55, 0.40, 0.15, 0.60, 0.30])
PIXELS = np.array([100, 400, 300, 500, 200, 200, 100, 400])


def test_overall_row_equals_sklearn():
    rows = {r.outlier_type: r for r in evaluate_method("mse_m", SCORES, TRUTH, threshold=0.5,
                                                       pixel_count=PIXELS)}
    y = TRUTH != "inlier"
    overall = rows["all"]
    assert (overall.n_inliers, overall.n_outliers) == (5, 3)
    assert overall.auroc == pytest.approx(roc_auc_score(y, SCORES))
    assert overall.average_precision == pytest.approx(average_precision_score(y, SCORES))
    assert overall.precision_at_t == pytest.approx(precision_score(y, SCORES > 0.5))  # 2 of 3
    assert overall.recall_at_t == pytest.approx(recall_score(y, SCORES > 0.5))        # 2 of 3
    assert overall.precision_at_t == pytest.approx(2 / 3)
    assert overall.false_alarm_rate == pytest.approx(1 / 5)  # the inlier at 0.55
    inl = TRUTH == "inlier"
    assert overall.spearman_pixel_count == pytest.approx(spearmanr(SCORES[inl], PIXELS[inl]).statistic)


def test_per_type_rows_compare_one_type_against_inliers():
    rows = {r.outlier_type: r for r in evaluate_method("mse_m", SCORES, TRUTH, threshold=0.5,
                                                       pixel_count=PIXELS)}
    assert sorted(rows) == ["all", "fov", "metal"]
    keep = (TRUTH == "inlier") | (TRUTH == "metal")
    y = TRUTH[keep] == "metal"
    assert rows["metal"].auroc == pytest.approx(roc_auc_score(y, SCORES[keep]))  # = 1.0
    assert rows["metal"].recall_at_t == 1.0
    assert rows["fov"].auroc == pytest.approx(0.8)  # 0.40 beats 4 of 5 inliers
    assert rows["fov"].recall_at_t == 0.0
    assert np.isnan(rows["fov"].spearman_pixel_count)


def test_nan_scores_are_left_out_and_no_threshold_leaves_nan():
    scores = SCORES.copy()
    scores[0] = np.nan
    row = evaluate_method("mse", scores, TRUTH, threshold=None, pixel_count=PIXELS)[0]
    assert row.n_inliers == 4 and np.isnan(row.precision_at_t) and np.isnan(row.recall_at_t)


def test_each_base_ranks_its_outliers_against_its_own_inliers_and_the_cohorts():
    base = np.array(["a", "a", "a", "b", "b", "b", "a", ""], dtype=object)
    rows = {r.base: r for r in evaluate_by_base(SCORES, TRUTH, base, threshold=0.5)}
    assert sorted(rows) == ["(none)", "a", "b"]
    a, b, none = rows["a"], rows["b"], rows["(none)"]
    assert (a.n_inliers, a.n_outliers, b.n_inliers, b.n_outliers) == (2, 2, 2, 1)
    own = base == "b"
    assert b.auroc_within == pytest.approx(roc_auc_score(TRUTH[own] != "inlier", SCORES[own]))
    assert b.auroc_within == pytest.approx(0.5)   # the fov at 0.40 beats 0.15, not 0.55
    assert b.auroc_cohort == pytest.approx(0.8)   # beats 4 of the cohort's 5 inliers
    assert a.auroc_within == a.auroc_cohort == 1.0
    assert (a.recall_at_t, a.inliers_flagged) == (1.0, 0)
    assert (b.recall_at_t, b.inliers_flagged) == (0.0, 1)  # its inlier at 0.55 passes T
    assert (none.n_inliers, none.n_outliers) == (1, 0) and np.isnan(none.auroc_within)
    scores = SCORES.copy()
    scores[4] = np.nan  # b's only outlier unscored: left out, as evaluate_method leaves it
    assert np.isnan({r.base: r for r in evaluate_by_base(scores, TRUTH, base, threshold=None)}["b"].auroc_cohort)


def test_size_bias_is_taken_apart_into_the_bases_levels_and_the_slope_within_each_base():
    rng = np.random.default_rng(3)
    # two bases whose own levels line up with their sizes; inside each, the score falls with size
    small, large = np.arange(100.0, 110.0), np.arange(1000.0, 1012.0)
    sizes = np.concatenate([small, large, [5000.0, 50.0, 60.0]])
    scores = np.concatenate([1.0 - 0.01 * np.arange(10) + rng.normal(0, 0.02, 10),
                             5.0 - 0.01 * np.arange(12) + rng.normal(0, 0.02, 12), [9.0, 0.5, 0.6]])
    truth = np.array(["inlier"] * 22 + ["metal", "inlier", "inlier"], dtype=object)
    base = np.array(["small"] * 10 + ["large"] * 12 + ["large", "tiny", "tiny"], dtype=object)
    parts = size_bias_by_base(scores, sizes, truth, base)
    assert parts.n_bases == 2  # "tiny" has two inliers, fewer than six: left out, as the outlier is
    rho = {b: spearmanr(scores[:22][base[:22] == b], sizes[:22][base[:22] == b]).statistic
           for b in ("small", "large")}
    assert parts.within == pytest.approx((10 * rho["small"] + 12 * rho["large"]) / 22)
    assert parts.within < -0.5 and parts.between == pytest.approx(1.0)
    centred = scores[:22] - np.where(base[:22] == "small", np.median(scores[:10]), np.median(scores[10:22]))
    assert parts.centred == pytest.approx(spearmanr(centred, sizes[:22]).statistic)
    overall = spearmanr(scores[:22], sizes[:22]).statistic
    assert overall > 0.5  # what ρ over all inliers reads: the bases' levels, not the slope inside each
    assert size_bias_by_base(scores, sizes, truth, np.array(["one"] * 25, dtype=object)) is None


def test_undefined_metrics_are_nan():
    assert all(np.isnan(ranking_metrics(np.zeros(4, bool), np.arange(4.0))))
    precision, recall = precision_recall_at(np.array([True, False]), np.array([False, False]))
    assert np.isnan(precision) and recall == 0.0


def _stats(n, rng):
    pixels = rng.randint(20_000, 40_000, n).astype(float)
    return {
        "pixel_count": pixels, "hu_mean": rng.normal(-400, 20, n), "hu_std": rng.normal(450, 10, n),
        "hu_min": np.full(n, -1024.0), "hu_max": rng.normal(1200, 50, n),
        "hu_p1": rng.normal(-1000, 5, n), "hu_p99": rng.normal(300, 20, n),
        "body_voxels": pixels * 0.5, "metal_voxels": np.zeros(n),
    }


def test_isolation_forest_finds_the_metal_scan(rng):
    stats = _stats(40, rng)
    stats["hu_max"][5], stats["metal_voxels"][5] = 3071.0, 800.0
    feats = pixel_stat_features(stats)
    assert feats.shape == (40, 9)
    scores = isolation_forest_scores(feats, np.ones(40, bool), seed=0)
    assert int(np.argmax(scores)) == 5
    np.testing.assert_array_equal(scores, isolation_forest_scores(feats, np.ones(40, bool), seed=0))


def test_mahalanobis_finds_the_odd_histogram(rng):
    hist = rng.poisson(200, size=(30, 12)).astype(float)
    hist[3, 10] += 5000  # a mass of bright voxels
    scores = mahalanobis_scores(histogram_features(hist), np.ones(30, bool))
    assert int(np.argmax(scores)) == 3
    assert histogram_features(hist).sum(axis=1) == pytest.approx(np.ones(30))


def test_baselines_refuse_bad_inputs():
    with pytest.raises(ValueError, match="at least one voxel"):
        histogram_features(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="at least 2 scans"):
        mahalanobis_scores(np.ones((3, 2)), np.array([True, False, False]))


def test_spearman_interval_covers_the_true_rho_as_often_as_it_says():
    # 119 inliers, as on a real-anatomy cohort; a size bias of none and of −0.15
    rng = np.random.default_rng(7)
    assert spearman_interval(0.0, 119) == pytest.approx((-0.180, 0.180), abs=1e-3)
    for true_rho in (0.0, -0.15):
        covered, misses_target = 0, 0
        for _ in range(600):
            size = rng.normal(size=119)
            score = true_rho * size + np.sqrt(1 - true_rho**2) * rng.normal(size=119)
            rho = spearmanr(score, size).statistic
            low, high = spearman_interval(rho, 119)
            covered += low <= true_rho <= high  # Spearman's ρ of a normal pair ≈ its r (±0.005)
            misses_target += abs(rho) >= 0.1
        assert 0.92 <= covered / 600 <= 0.98
        if true_rho == 0.0:  # no bias at all, and still |ρ| ≥ 0.1 on about a quarter of cohorts
            assert 0.2 <= misses_target / 600 <= 0.34
    assert np.isnan(spearman_interval(0.3, 3)).all() and np.isnan(spearman_interval(np.nan, 50)).all()
