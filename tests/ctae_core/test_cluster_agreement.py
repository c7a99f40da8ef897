"""The clusters' agreement with a grouping: 1 for the same groups, ~0 for unrelated ones,
noise points and unknown groups left out."""

from __future__ import annotations

import numpy as np
import pytest

from ctae_core.cluster_agreement import cluster_agreement, size_groups


def test_clusters_that_are_the_scanners_agree_fully_and_unrelated_ones_not_at_all():
    rng = np.random.default_rng(0)
    scanner = np.repeat(["siemens|b70f", "philips|b", "ge|standard"], 100)
    clusters = np.repeat([2, 0, 1], 100)  # the same groups under other names
    assert cluster_agreement(clusters, scanner) == pytest.approx(1.0)
    shuffled = rng.permutation(clusters)
    assert abs(cluster_agreement(shuffled, scanner)) < 0.02  # chance: adjusted to about 0


def test_noise_points_and_unknown_groups_are_left_out():
    scanner = np.array(["a", "a", "b", "b", "a", "b", None, np.nan], dtype=object)
    clusters = np.array([0, 0, 1, 1, -1, -1, 0, 1])  # the noise points would disagree
    assert cluster_agreement(clusters, scanner) == pytest.approx(1.0)
    assert cluster_agreement(np.array([-1, -1, 0]), np.array(["a", "b", None], dtype=object)) is None


def test_size_groups_split_the_scans_into_equal_thirds_by_pixel_count():
    pixels = np.array([9e5, 1e5, 5e5, 2e5, 8e5, 4e5])
    assert size_groups(pixels).tolist() == [2, 0, 1, 0, 2, 1]
