"""UMAP + DBSCAN: deterministic under the seed, separated groups become clusters."""

from __future__ import annotations

import numpy as np
import pytest

from ctae_core.features import EmbedConfig, cluster_summary, dbscan_labels, embed_latents


@pytest.fixture(scope="module")
def two_groups():
    """60 latent vectors (D = 16) in two well separated groups of 30, plus the embeddings of
    two runs with the same seed and one with another seed (UMAP compiles once per module)."""
    rng = np.random.RandomState(7)
    latents = np.concatenate([rng.normal(0, 1, (30, 16)), rng.normal(8, 1, (30, 16))]).astype(np.float32)
    first = embed_latents(latents, EmbedConfig(seed=3))
    second = embed_latents(latents, EmbedConfig(seed=3))
    other = embed_latents(latents, EmbedConfig(seed=4))
    return latents, first, second, other


def test_same_seed_gives_the_same_embedding_and_clusters(two_groups):
    _, (p1, c1), (p2, c2), _ = two_groups
    assert p1.shape == (60, 2)
    np.testing.assert_array_equal(p1, p2)
    np.testing.assert_array_equal(c1, c2)


def test_another_seed_changes_the_points(two_groups):
    _, (p1, _), _, (p3, _) = two_groups
    assert not np.allclose(p1, p3)


def test_separated_groups_never_share_a_cluster(two_groups):
    _, (_, clusters), _, _ = two_groups
    a, b = set(clusters[:30]) - {-1}, set(clusters[30:]) - {-1}
    assert a and b and not a & b


def test_dbscan_matches_a_hand_built_case():
    points = np.array([[0, 0], [0, 0.3], [0.3, 0], [5, 5], [5, 5.3], [5.3, 5], [20, 20]], float)
    labels = dbscan_labels(points, eps=0.5, min_pts=3)
    assert labels.tolist() == [0, 0, 0, 1, 1, 1, -1]


def test_cluster_summary_sizes_and_means():
    labels = np.array([0, 0, 1, -1, 0])
    rows = cluster_summary(labels, {"mse_m": np.array([1.0, 3.0, 5.0, 7.0, np.nan])})
    assert rows[0] == {"cluster": 0, "n_scans": 3, "mse_m_mean": 2.0, "mse_m_median": 2.0}
    assert [r["cluster"] for r in rows] == [0, -1, 1]


def test_too_few_or_bad_latents_are_refused():
    with pytest.raises(ValueError, match="at least 4"):
        embed_latents(np.zeros((3, 8)))
    bad = np.zeros((10, 4))
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        embed_latents(bad)


def test_config_round_trip_and_validation():
    cfg = EmbedConfig(eps=0.7, min_pts=4, seed=9)
    assert EmbedConfig.from_dict(cfg.to_dict()) == cfg
    for eps in (0, -1, float("nan"), float("inf")):  # NaN and inf reached DBSCAN until stop 56
        with pytest.raises(ValueError, match=f"eps must be a number > 0, not {eps}"):
            EmbedConfig(eps=eps)
    with pytest.raises(ValueError, match="min_dist must lie in"):
        EmbedConfig(min_dist=float("nan"))
