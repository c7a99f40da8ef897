"""Kappas against hand computations and scikit-learn; read assignment; nearest scans."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from ctae_core.agreement import (
    cohen_kappa,
    cohen_with_interval,
    fleiss_kappa,
    fleiss_with_interval,
    run_agreement,
)
from ctae_core.review_assignment import assign_reads
from ctae_core.similar import nearest


def test_cohen_kappa_by_hand_and_as_sklearn():
    a = ["out", "out", "in", "in", "in", "out"]
    b = ["out", "in", "in", "in", "out", "out"]
    # by hand: p_o = 4/6; a: out 3/6, in 3/6; b: out 3/6, in 3/6 → p_e = 1/2 → κ = (2/3 − 1/2)/(1/2)
    assert cohen_kappa(np.array(a), np.array(b)) == pytest.approx(1 / 3)
    rng = np.random.default_rng(3)
    x = rng.integers(0, 3, 300)
    y = np.where(rng.random(300) < 0.7, x, rng.integers(0, 3, 300))
    assert cohen_kappa(x, y) == pytest.approx(cohen_kappa_score(x, y), abs=1e-12)
    k = cohen_with_interval(x, y)
    assert k.low < k.kappa < k.high and k.n == 300 and k.high - k.low < 0.2


def test_fleiss_kappa_by_hand():
    # Fleiss (1971) by hand: 4 scans × 2 reads, categories (out, in, unsure)
    counts = np.array([[2, 0, 0], [0, 2, 0], [1, 1, 0], [0, 0, 2]])
    # P_i = 1, 1, 0, 1 → P̄ = 3/4; p_j = 3/8, 3/8, 2/8 → P_e = 22/64; κ = (3/4 − 22/64)/(42/64)
    assert fleiss_kappa(counts) == pytest.approx((48 - 22) / 42)
    assert fleiss_kappa(np.array([[3, 0], [0, 3], [3, 0]])) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="same number"):
        fleiss_kappa(np.array([[2, 0], [1, 2]]))
    two_readers = fleiss_with_interval(np.array([[2, 0], [0, 2], [1, 1]] * 20))
    assert two_readers.low <= two_readers.kappa <= two_readers.high


def test_double_reads_go_to_distinct_reviewers_with_balanced_shuffled_queues():
    scans = [f"s{i}" for i in range(30)]
    queues = assign_reads(scans, ["a", "b", "c"], reads=2, seed=1)
    readers = {s: [r for r, q in queues.items() if s in q] for s in scans}
    assert all(len(set(r)) == 2 for r in readers.values())
    assert sorted(len(q) for q in queues.values()) == [20, 20, 20]
    assert queues["a"] != sorted(queues["a"], key=scans.index)  # shuffled, not in given order
    assert assign_reads(scans, ["a", "b", "c"], reads=2, seed=1) == queues  # repeatable
    with pytest.raises(ValueError, match="at least 3 reviewers"):
        assign_reads(scans, ["a", "b"], reads=3)


def test_nearest_scans_in_standardised_space():
    points = np.array([[0.0, 0.0], [10.0, 0.1], [0.1, 0.0], [0.0, 5.0], [np.nan, 0.2]])
    # column 0 spans 10, column 1 spans 5: after standardising, scan 2 is nearest to scan 0
    order = nearest(points, 0, 2)
    assert order[0] == 2 and 0 not in order
    assert list(nearest(np.full((3, 2), np.nan), 0, 2)) == []


def test_two_runs_flags_are_cross_counted_with_kappa_and_their_scores_ranked():
    from scipy.stats import spearmanr

    rng = np.random.default_rng(3)
    scores_a = rng.normal(size=200)
    scores_b = scores_a + rng.normal(scale=0.5, size=200)
    flags_a, flags_b = scores_a > 1.5, scores_b > 1.5
    agree = run_agreement(flags_a, flags_b, scores_a, scores_b)
    assert agree.scans == 200 and agree.both + agree.only_a + agree.only_b + agree.neither == 200
    assert agree.both == int((flags_a & flags_b).sum()) and agree.only_b == int((~flags_a & flags_b).sum())
    assert agree.kappa == pytest.approx(cohen_kappa_score(flags_a, flags_b))
    assert agree.spearman == pytest.approx(spearmanr(scores_a, scores_b).statistic)
    none = run_agreement([False] * 3, [False] * 3, [1.0, 1.0, 1.0], [0.1, 0.2, 0.3])
    assert (none.neither, np.isnan(none.kappa), np.isnan(none.spearman)) == (3, True, True)
