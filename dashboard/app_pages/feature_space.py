"""Feature space: the run's UMAP embedding (thesis Fig. 4.17–4.20), DBSCAN re-run live with
adjustable eps / minPts, what the clusters follow (their agreement with the scanner, the scan's
size, the flag and the reviewers' labels) and per-cluster histograms of pixel count and MSE_m
(Fig. 4.21 / 4.22)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from ctae_core.cluster_agreement import cluster_agreement, compared, size_groups
from dashboard import charts, state
from dashboard.clusters import LIVE_LIMIT, live_clusters
from dashboard.selection import selected_scan_ids

COLOUR_TITLES = {"flag": "flagged at T", "manufacturer": "manufacturer", "kernel": "kernel",
                 "local_error_hu": "local error (anomaly map peak, HU)"}

st.title("Feature space")
run_id, scans = state.require_embeddings()
points = scans[scans["umap_x"].notna()]

c1, c2, c3, c4 = st.columns([2, 1, 1, 1])
color_by = c1.selectbox(
    "Colour by",
    ["cluster", "label", "flag", "manufacturer", "kernel", "pixel_count", "mse_m", "local_error_hu"],
    key="fs_color",
    format_func=lambda c: COLOUR_TITLES.get(c, charts.AXIS_TITLES.get(c, c)),
    help="Do the clusters follow the scanner (manufacturer, kernel), the anatomy (pixel count: "
    "the scan's extent), or the anomalies (flag, label, local error)?",
)
live = c2.toggle(
    "Re-cluster live",
    key="fs_live",
    disabled=len(points) > LIVE_LIMIT,
    help=f"DBSCAN on the 2-D embedding (up to {LIVE_LIMIT:,} points)",
)
eps = c3.slider("eps", 0.05, 3.0, 0.5, 0.05, key="fs_eps", disabled=not live)
min_pts = c4.slider("minPts", 2, 50, 5, key="fs_min_pts", disabled=not live)

clusters = points["cluster"]
if live:
    clusters = pd.Series(live_clusters(state.catalog(), run_id, eps, min_pts), index=points.index)
    points = points.assign(cluster=clusters)
n_clusters = int(clusters[clusters >= 0].nunique())
st.caption(
    f"{len(points):,} scans · {n_clusters} clusters · "
    f"{int((clusters == -1).sum()):,} noise points · "
    + ("live DBSCAN" if live else "clusters stored by `ctae embed`")
)

groupings = {  # what the clusters might follow; NaN: a scan the grouping does not know
    "scanner (manufacturer · kernel)": points["manufacturer"].fillna("unknown").astype(str)
    + " · " + points["kernel"].fillna("unknown").astype(str),
    "size (pixel-count thirds)": size_groups(points["pixel_count"]),
    "flagged at T": points["is_outlier"],
    "reviewers' label": points["label"],
}
cluster_ids = clusters.fillna(-1).to_numpy(dtype=int)
st.dataframe(
    pd.DataFrame({
        "the clusters follow": list(groupings),
        "agreement": [cluster_agreement(cluster_ids, g) for g in groupings.values()],
        "scans compared": [int(compared(cluster_ids, g).sum()) for g in groupings.values()],
    }),
    hide_index=True, key="fs_agreement",
    column_config={"agreement": st.column_config.NumberColumn(
        format="%.2f", help="Adjusted mutual information of the clusters (noise points left "
        "out) with the grouping: 0 = no more than chance, 1 = the same groups (on 20,000 "
        "of the scans compared at most)")},
)

if color_by in ("cluster", "label", "flag", "manufacturer", "kernel"):
    fig = charts.categorical_scatter(points, "umap_x", "umap_y", color_by)
else:
    fig = charts.continuous_scatter(points, "umap_x", "umap_y", color_by)
fig = charts.mark_flagged(fig, points, "umap_x", "umap_y")
event = st.plotly_chart(
    fig, key="umap_scatter", on_select="rerun", selection_mode=("points", "box", "lasso")
)

left, right = st.columns(2)
left.plotly_chart(charts.cluster_histograms(points, "pixel_count", clusters), key="cluster_pixels")
right.plotly_chart(charts.cluster_histograms(points, "mse_m", clusters), key="cluster_mse")

chosen = selected_scan_ids(event)
if chosen:
    st.success(f"{len(chosen)} scans selected")
    if st.button(f"Review the {len(chosen)} selected scans in the viewer", key="fs_open"):
        state.select_scans(chosen)
        st.switch_page("app_pages/viewer.py")
