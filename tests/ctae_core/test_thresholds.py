"""T under each rule equals a hand computation; the flagged set follows the rule."""

from __future__ import annotations

import numpy as np
import pytest

from ctae_core.thresholds import ThresholdRule, flag

VAL = np.array([1.0, 2.0, 3.0, 4.0, 10.0])


def test_mean_std_is_eq_3_4():
    # mean 4, population std sqrt((9 + 4 + 1 + 0 + 36) / 5) = sqrt(10)
    assert ThresholdRule().threshold(VAL) == pytest.approx(4 + 3 * np.sqrt(10))
    assert ThresholdRule(k=2).threshold(VAL) == pytest.approx(4 + 2 * np.sqrt(10))


def test_mad_rule_is_robust_to_the_outlier():
    # median 3, |v - 3| = 2, 1, 0, 1, 7 → MAD 1
    assert ThresholdRule("mad", k=3).threshold(VAL) == pytest.approx(3 + 3 * 1.4826, rel=1e-5)


def test_percentile_rule_interpolates():
    assert ThresholdRule("percentile", percentile=50).threshold(VAL) == pytest.approx(3.0)
    assert ThresholdRule("percentile", percentile=90).threshold(VAL) == pytest.approx(7.6)


def test_pvalue_rule_gives_each_kind_of_evidence_its_sidak_share_of_p():
    # one kind: P(−log U > t) = e^−t, so T = −log p exactly
    assert ThresholdRule("pvalue", p=0.01, evidence=1).threshold(VAL) == pytest.approx(-np.log(0.01))
    # fifteen kinds (since stop 44): each may pass T with q = 1 − (1 − p)^(1/15); at the default
    # p = 0.003, T ≈ 8.52 (9.62 at p = 0.001). Whether the inliers' false-alarm rate then holds on real
    # anatomy, where the kinds are dependent and heavy-tailed, is tested on real volumes
    # (tests/ctae_core/test_calibration_real.py)
    t = ThresholdRule("pvalue").threshold(VAL)
    assert np.exp(-t) == pytest.approx(1 - (1 - 0.003) ** (1 / 15))
    assert t == pytest.approx(8.52, abs=0.01)
    assert ThresholdRule("pvalue", p=0.001).threshold(VAL) == pytest.approx(9.62, abs=0.01)
    # independent of the validation scores, so a validation outlier cannot lift it
    assert ThresholdRule("pvalue").threshold(np.append(VAL, 1e6)) == t

def test_nan_scores_are_ignored():
    with_nan = np.append(VAL, np.nan)
    assert ThresholdRule().threshold(with_nan) == pytest.approx(ThresholdRule().threshold(VAL))


def test_flagged_set_follows_the_rule():
    scores = np.array([2.0, 5.0, 7.0, 12.0, np.nan])
    mean_std = flag(scores, ThresholdRule().threshold(VAL))           # T ≈ 13.49
    mad = flag(scores, ThresholdRule("mad").threshold(VAL))            # T ≈ 7.45
    pct = flag(scores, ThresholdRule("percentile", percentile=50).threshold(VAL))  # T = 3
    assert mean_std.tolist() == [False, False, False, False, False]
    assert mad.tolist() == [False, False, False, True, False]
    assert pct.tolist() == [False, True, True, True, False]


def test_score_equal_to_t_is_not_flagged():
    assert flag(np.array([3.0]), 3.0).tolist() == [False]


def test_round_trip_through_dict():
    rule = ThresholdRule("percentile", k=2.5, percentile=97.5, p=0.01, evidence=2)
    assert ThresholdRule.from_dict({**rule.to_dict(), "n_val": 12}) == rule


@pytest.mark.parametrize(
    "kwargs, message",
    [({"rule": "iqr"}, "one of"), ({"k": -1}, "k must"), ({"percentile": 100}, "percentile must"),
     ({"p": 0.0}, "p must"), ({"evidence": 0}, "evidence must")],
)
def test_bad_rules_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ThresholdRule(**kwargs)


def test_too_few_validation_scores():
    with pytest.raises(ValueError, match="validation split is empty"):
        ThresholdRule().threshold(np.array([1.0, np.nan]))
