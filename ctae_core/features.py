"""The feature space of a run (thesis 3.6): latent vectors → UMAP 2D (seeded) → DBSCAN clusters.

``umap`` is imported inside :func:`umap_embed` only: its first import and fit compile numba code
for ~20–30 s, which the CLI's start and the dashboard must not pay.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ctae_core.config import positive_number

logger = logging.getLogger(__name__)

NOISE = -1
"""DBSCAN's label for points in no cluster."""

MIN_POINTS_FOR_UMAP = 4


@dataclass(frozen=True)
class EmbedConfig:
    """UMAP and DBSCAN parameters (defaults: thesis 3.6 for DBSCAN, umap-learn's for UMAP).

    Attributes:
        n_neighbors: UMAP neighbourhood size; capped at N − 1 for small sets.
        min_dist: UMAP minimum distance between embedded points.
        seed: UMAP random state (makes the embedding repeatable).
        eps: DBSCAN neighbourhood radius in UMAP units.
        min_pts: DBSCAN minimum points in an eps-neighbourhood for a core point.
    """

    n_neighbors: int = 15
    min_dist: float = 0.1
    seed: int = 0
    eps: float = 0.5
    min_pts: int = 5

    def __post_init__(self) -> None:
        if self.n_neighbors < 2:
            raise ValueError(f"n_neighbors must be >= 2, not {self.n_neighbors}")
        if not positive_number(self.eps):
            raise ValueError(f"eps must be a number > 0, not {self.eps}")
        if self.min_pts < 1:
            raise ValueError(f"min_pts must be >= 1, not {self.min_pts}")
        if not 0 <= self.min_dist <= 1:
            raise ValueError(f"min_dist must lie in [0, 1], not {self.min_dist}")

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON storage with the run."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EmbedConfig:
        """Inverse of :meth:`to_dict`."""
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


def umap_embed(
    latents: np.ndarray, *, n_neighbors: int = 15, min_dist: float = 0.1, seed: int = 0
) -> np.ndarray:
    """Reduce latent vectors to 2D with UMAP; the same seed gives the same points.

    Args:
        latents: Array of shape (N, D), N >= 4, all finite.
        n_neighbors: UMAP neighbourhood size; capped at N − 1.
        min_dist: UMAP minimum distance.
        seed: Random state; fixes the result (UMAP then runs single-threaded).

    Returns:
        float64 array of shape (N, 2).
    """
    latents = _check_latents(latents)
    n = latents.shape[0]
    neighbors = min(n_neighbors, n - 1)
    if neighbors < n_neighbors:
        logger.info("umap n_neighbors=%d capped to %d for %d points", n_neighbors, neighbors, n)
    import umap  # lazy: numba compilation on first use

    reducer = umap.UMAP(
        n_components=2,
        n_neighbors=neighbors,
        min_dist=min_dist,
        random_state=seed,
        n_jobs=1,
        init="spectral" if n > 2 * neighbors else "random",
    )
    return np.asarray(reducer.fit_transform(latents), dtype=np.float64)


def dbscan_labels(points: np.ndarray, *, eps: float = 0.5, min_pts: int = 5) -> np.ndarray:
    """DBSCAN cluster label per point (thesis: eps 0.5, minPts 5); -1 marks noise.

    Args:
        points: Array of shape (N, 2), the UMAP embedding.

    Returns:
        int64 array of shape (N,).
    """
    from sklearn.cluster import DBSCAN

    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[0] == 0:
        raise ValueError(f"points must have shape (N, d) with N >= 1, got {points.shape}")
    return DBSCAN(eps=eps, min_samples=min_pts).fit_predict(points).astype(np.int64)


def embed_latents(latents: np.ndarray, config: EmbedConfig = EmbedConfig()) -> tuple[np.ndarray, np.ndarray]:
    """UMAP then DBSCAN: returns ((N, 2) points, (N,) cluster labels)."""
    points = umap_embed(
        latents, n_neighbors=config.n_neighbors, min_dist=config.min_dist, seed=config.seed
    )
    return points, dbscan_labels(points, eps=config.eps, min_pts=config.min_pts)


def cluster_summary(labels: np.ndarray, values: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """Per-cluster size and mean/median of each value (thesis Figs. 4.21–4.22), largest first.

    Args:
        labels: (N,) cluster labels from :func:`dbscan_labels`.
        values: Name → (N,) array (e.g. ``mse_m``, ``pixel_count``); NaNs are ignored.

    Returns:
        One dict per cluster: ``cluster``, ``n_scans``, then ``<name>_mean`` and ``<name>_median``.
    """
    labels = np.asarray(labels)
    rows = []
    for cluster in np.unique(labels):
        members = labels == cluster
        row: dict[str, Any] = {"cluster": int(cluster), "n_scans": int(members.sum())}
        for name, column in values.items():
            column = np.asarray(column, dtype=np.float64)[members]
            finite = column[np.isfinite(column)]
            row[f"{name}_mean"] = float(finite.mean()) if finite.size else float("nan")
            row[f"{name}_median"] = float(np.median(finite)) if finite.size else float("nan")
        rows.append(row)
    return sorted(rows, key=lambda r: (-r["n_scans"], r["cluster"]))


def _check_latents(latents: np.ndarray) -> np.ndarray:
    latents = np.asarray(latents, dtype=np.float32)
    if latents.ndim != 2:
        raise ValueError(f"latents must have shape (N, D), got {latents.shape}")
    if latents.shape[0] < MIN_POINTS_FOR_UMAP:
        raise ValueError(
            f"UMAP needs at least {MIN_POINTS_FOR_UMAP} latent vectors, got {latents.shape[0]}; "
            "score more scans first"
        )
    if not np.isfinite(latents).all():
        raise ValueError("latents hold NaN or inf; re-score the run (`ctae score --overwrite`)")
    return latents
