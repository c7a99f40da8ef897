"""Live DBSCAN on a run's stored UMAP points, cached per (eps, minPts)."""

from __future__ import annotations

import numpy as np
import streamlit as st

from ctae_core.features import dbscan_labels
from dashboard import data

LIVE_LIMIT = 50_000
"""Most points re-clustered live; beyond that the stored clusters of `ctae embed` are shown."""


@st.cache_data(ttl=300, show_spinner="Running DBSCAN …", max_entries=32)
def live_clusters(catalog: str, run_id: str, eps: float, min_pts: int) -> np.ndarray:
    """DBSCAN labels (−1 = noise) of the run's embedded scans, in scan-table order."""
    scans = data.scan_table(catalog, run_id)
    xy = scans.loc[scans["umap_x"].notna(), ["umap_x", "umap_y"]].to_numpy()
    return dbscan_labels(xy, eps=eps, min_pts=min_pts)
