from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import gamma, norm

from ctae_core.combined_evidence import combined_score, deciding_kinds, top_sum_logsf
from ctae_core.thresholds import ThresholdRule


@pytest.mark.parametrize(("n", "k"), [(12, 3), (5, 2), (9, 4), (12, 1)])
def test_the_sum_of_the_k_largest_follows_its_exact_null(n, k):
    rng = np.random.default_rng(7)
    draws = -np.sort(-rng.exponential(size=(400_000, n)), axis=1)[:, :k].sum(axis=1)
    for s in (2.0, 6.0, 10.0, 13.0):
        seen = float((draws > s).mean())
        exact = float(np.exp(top_sum_logsf(s, n, k)))
        # binomial standard error of the seen share, and a floor for the far tail
        assert abs(seen - exact) < 5 * np.sqrt(exact * (1 - exact) / draws.size) + 2e-5, (s, seen, exact)


def test_the_null_reduces_to_the_largest_and_to_the_whole_sum_at_its_ends():
    s = np.array([0.5, 4.0, 20.0, 60.0])
    np.testing.assert_allclose(top_sum_logsf(s, 12, 12), gamma.logsf(s, 12), rtol=1e-9, atol=1e-12)
    largest = np.log(-np.expm1(12 * np.log1p(-np.exp(-s))))
    np.testing.assert_allclose(top_sum_logsf(s, 12, 1), largest, rtol=1e-7, atol=1e-12)
    assert np.all(np.diff(top_sum_logsf(np.linspace(0, 200, 401), 12, 3)) < 0)  # a tail falls
    assert top_sum_logsf(400.0, 12, 3) < -380  # far past any float's p, still finite


def test_an_inlier_passes_t_at_the_rate_p_promises():
    z = np.random.default_rng(3).standard_normal((12, 300_000))
    scores = combined_score(z)
    for p in (0.05, 0.01, 0.003):
        t = ThresholdRule("pvalue", p=p, evidence=12).threshold(np.array([0.0, 1.0]))
        share = float((scores > t).mean())
        assert 0.6 * p < share <= 1.05 * p, (p, share)


def test_several_moderate_kinds_together_pass_t_where_none_does_alone():
    t = ThresholdRule("pvalue", p=0.003, evidence=12).threshold(np.array([0.0, 1.0]))
    z = np.zeros((12, 3))
    z[:3, 0] = 3.2  # three kinds at z 3.2 (a misfiled body region: histogram, tissue, outline)
    z[0, 1] = 3.2  # one of them alone
    z[0, 2] = 8.0  # one glaring kind
    scores = combined_score(z)
    assert -norm.logsf(3.2) < t  # no kind passes T by itself
    assert scores[0] > t > scores[1]
    # one kind alone is judged by it: its −log p less about log 2 (Šidák over the two statistics)
    assert scores[2] == pytest.approx(-norm.logsf(8.0) - np.log(2), abs=1e-3)
    assert deciding_kinds(z).tolist() == [3, 1, 1]


def test_unmeasured_kinds_are_left_out_and_a_scan_without_any_gets_none():
    z = np.full((12, 3), np.nan)
    z[0, 0] = 4.0
    z[:, 1] = 0.0
    z[0, 1] = 4.0
    scores = combined_score(z)
    assert np.isnan(scores[2])
    # with one kind measured the scan is judged among one kind, not twelve
    assert scores[0] > scores[1]
