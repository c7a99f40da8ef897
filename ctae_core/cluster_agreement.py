"""What a run's clusters follow: how far the latent space's DBSCAN clusters agree with a grouping
of the same scans (the scanner, the scan's size, the flag at T, the reviewers' labels).

The agreement is the adjusted mutual information (Vinh, Epps and Bailey, 2010): 0 where the
clusters tell no more about the grouping than chance would, 1 where they are the same groups,
whatever the number and the sizes of either. DBSCAN's noise points (cluster −1) are no cluster
and are left out, and so are scans the grouping does not know (no label yet).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SIZE_GROUPS = 3
"""The size grouping's number of groups: pixel-count quantiles (small, middle, large scans)."""


def cluster_agreement(clusters: np.ndarray, grouping: np.ndarray) -> float | None:
    """Adjusted mutual information of ``clusters`` (DBSCAN labels, −1: noise) with ``grouping``
    (one value per scan, None or NaN: unknown) over the scans in a cluster with a known group;
    None where fewer than two such scans remain."""
    from sklearn.metrics import adjusted_mutual_info_score

    clusters = np.asarray(clusters)
    groups = pd.Series(np.asarray(grouping, dtype=object))
    keep = (clusters >= 0) & groups.notna().to_numpy()
    if keep.sum() < 2:
        return None
    return float(adjusted_mutual_info_score(groups[keep].astype(str), clusters[keep]))


def size_groups(pixel_count: np.ndarray, groups: int = SIZE_GROUPS) -> np.ndarray:
    """Each scan's pixel-count quantile group (0 = smallest), from ``groups`` equal shares."""
    ranks = pd.Series(np.asarray(pixel_count, dtype=np.float64)).rank(method="first").to_numpy()
    return ((ranks - 1) * groups // max(len(ranks), 1)).astype(int)
