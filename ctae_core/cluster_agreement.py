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
SAMPLE = 20_000
"""Scans the agreement is measured on at most, drawn at random (fixed seed) from those compared:
the adjusted mutual information's expected-value term costs ~2 s per grouping at 1M scans, on
every rerun of the page, and 20,000 scans tell it to about ±0.01."""


def compared(clusters: np.ndarray, grouping: np.ndarray) -> np.ndarray:
    """The scans the agreement compares: in a cluster (not DBSCAN's noise, −1) and with a known
    group (not None or NaN)."""
    return (np.asarray(clusters) >= 0) & pd.Series(np.asarray(grouping, dtype=object)).notna().to_numpy()


def cluster_agreement(clusters: np.ndarray, grouping: np.ndarray) -> float | None:
    """Adjusted mutual information of ``clusters`` (DBSCAN labels, −1: noise) with ``grouping``
    (one value per scan, None or NaN: unknown) over the :func:`compared` scans (``SAMPLE`` of
    them at most); None where fewer than two remain."""
    from sklearn.metrics import adjusted_mutual_info_score

    rows = np.flatnonzero(compared(clusters, grouping))
    if rows.size < 2:
        return None
    if rows.size > SAMPLE:
        rows = np.sort(np.random.default_rng(0).choice(rows, SAMPLE, replace=False))
    groups = np.asarray(grouping, dtype=object)[rows].astype(str)
    return float(adjusted_mutual_info_score(groups, np.asarray(clusters)[rows]))


def size_groups(pixel_count: np.ndarray, groups: int = SIZE_GROUPS) -> np.ndarray:
    """Each scan's pixel-count quantile group (0 = smallest), from ``groups`` equal shares."""
    ranks = pd.Series(np.asarray(pixel_count, dtype=np.float64)).rank(method="first").to_numpy()
    return ((ranks - 1) * groups // max(len(ranks), 1)).astype(int)
