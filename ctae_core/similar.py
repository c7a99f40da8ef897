""""More like this": the scans nearest to one scan in latent or evidence space."""

from __future__ import annotations

import numpy as np
from sklearn.neighbors import NearestNeighbors


def nearest(points: np.ndarray, query: int, k: int) -> np.ndarray:
    """Row indices of the ``k`` rows of ``points`` (scans, features) nearest to row ``query``,
    nearest first, excluding the query. Features are standardised, NaN taken as the mean."""
    x = np.asarray(points, dtype=float)
    x = x[:, ~np.all(np.isnan(x), axis=0)]  # a kind of evidence the run did not measure
    if x.shape[1] == 0:
        return np.array([], dtype=int)
    mean = np.nanmean(x, axis=0)
    std = np.nanstd(x, axis=0)
    x = np.where(np.isnan(x), mean, x)
    x = (x - mean) / np.where(std > 0, std, 1.0)
    x = np.nan_to_num(x)
    k = min(k, len(x) - 1)
    if k <= 0:
        return np.array([], dtype=int)
    model = NearestNeighbors(n_neighbors=k + 1).fit(x)
    _, idx = model.kneighbors(x[query : query + 1])
    return np.array([i for i in idx[0] if i != query][:k], dtype=int)
