"""Outlier explorer: scores against pixel count and HU (thesis Fig. 4.2–4.5), histograms of
validation/test MSE_m with T (Fig. 4.7 / 4.8; the splits the Splits filter picks, where it picks
any) and the flagged scans (Table 4.2)."""

from __future__ import annotations

import streamlit as st

from dashboard import charts, data, density, echarts, state
from dashboard.montage import MONTAGE_SCANS, flagged_montage
from dashboard.selection import picked_scan_ids

MAX_POINTS = 5_000  # scans drawn as markers over a density layer, the highest scores first

st.title("Outlier explorer")
run_id = state.require_run()
# only the explorer's columns, and every scan's cluster only when colouring by cluster
colour_by_cluster = st.session_state.get("explorer_color") == "cluster"
scans = data.explorer_scans(state.catalog(), run_id, all_clusters=colour_by_cluster)
if scans["mse_m"].notna().sum() == 0:
    state.require_scores()  # stops with the shared "run ctae score" message
run = data.run_info(state.catalog(), run_id) or {}
threshold_score = run.get("threshold_score") or "mse_m"
# the run's own score first; outlier_score only where this run computed it
score_choices = [threshold_score] + [
    c for c in ("outlier_score", "mse_m", "mse", "mse_region")
    if c != threshold_score and scans[c].notna().any()
]

c1, c2, c3, c4 = st.columns(4)
score = c1.selectbox(
    "Score",
    score_choices,
    key="explorer_score",
    format_func=charts.AXIS_TITLES.get,
)
hu_axis = c2.selectbox(
    "HU axis", ["hu_max", "hu_mean"], key="explorer_hu", format_func=charts.AXIS_TITLES.get
)
color_by = c3.selectbox("Colour by", list(charts.COLOR_COLUMNS), key="explorer_color")
splits = c4.multiselect(
    "Splits", ["train", "val", "test", "unseen"], key="explorer_splits", placeholder="all splits"
)
log_score = st.toggle(
    "Log score axis", key="explorer_log", help="One extreme scan (a wrong rescale scores in the "
    "hundreds) flattens every other point on a linear axis."
)
keep = scans[score].notna().to_numpy()
if splits:
    keep = keep & scans["split"].isin(splits).to_numpy()
shown = scans if keep.all() else scans[keep]  # no copy of a 1M-row frame when nothing is hidden
threshold = run.get("threshold") if score == threshold_score else None
dense = len(shown) > charts.DENSITY_FROM
points, n_marked = None, 0
if dense:  # the scans a reviewer looks for: flagged, labelled, or queued for review
    marked = (
        shown["is_outlier"].fillna(False).astype(bool)
        | shown["label"].notna()
        | shown["scan_id"].isin(state.selection())
    ).to_numpy()
    n_marked = int(marked.sum())
    points = shown[marked].nlargest(MAX_POINTS, score)
st.caption(
    f"{len(shown):,} scans shown"
    + (
        " as a density (darker: more scans per cell); "
        + (f"the {len(points):,} highest-scoring of " if n_marked > len(points) else "")
        + f"{n_marked:,} flagged, labelled or selected scans drawn as points — box or lasso "
        "selection takes every scan inside"
        if dense else ""
    )
    + f" · threshold T applies to {threshold_score}"
    + ("" if threshold is not None else " (not the score on display, so no T line)")
)

scatter_x = {"scatter_pixels": "pixel_count", "scatter_hu": hu_axis}  # chart key: its x column
scatters = {  # ECharts, not Plotly: see dashboard/echarts.py
    key: echarts.score_scatter(shown, x_column, score, color_by, threshold, log_score, points)
    for key, x_column in scatter_x.items()
}
events = {}
for column, (key, chart) in zip(st.columns(2), scatters.items(), strict=True):
    with column:  # other points (a filter, another colouring): a new chart, no stale selection
        events[key] = st.echarts_chart(
            chart.option, key=f"{key}-{chart.points_identity}", on_select="rerun", height=440,
            alt=chart.alt,
        )

# the thesis's figures hold the validation and test scans; the Splits filter picks others
histogram_splits = [s for s in ("train", "val", "test", "unseen") if s in splits] or ["val", "test"]
st.echarts_chart(
    echarts.split_histograms(scans, score, threshold, histogram_splits),
    key=f"split_histograms-{'-'.join(histogram_splits)}",
    height=340,
    alt=f"Histograms of {charts.AXIS_TITLES.get(score, score)} of the "
        f"{', '.join(histogram_splits)} scans",
)

st.subheader("Flagged scans")
flagged = scans[scans["is_outlier"].fillna(False).astype(bool)]
if len(flagged) > charts.TABLE_ROWS:
    st.caption(f"The {charts.TABLE_ROWS:,} highest-scoring of {len(flagged):,} flagged scans; "
               "the Export page and `ctae export` list them all.")
flagged = flagged.sort_values(["score", "scan_id"], ascending=[False, True]).head(charts.TABLE_ROWS)
table_cols = [
    "scan_id",
    "split",
    "outlier_score",
    "mse_m",
    "pixel_count",
    "hu_max",
    "hu_mean",
    "cluster",
    "label",
    "causes",
]
table_event = st.dataframe(
    flagged[table_cols],
    hide_index=True,
    width="stretch",
    key="flagged_table",
    on_select="rerun",
    selection_mode="multi-row",
)

chosen = []
for key, chart in scatters.items():
    chosen += picked_scan_ids(events[key], chart.scan_ids)  # clicked or brushed points
    # a box or lasso takes every scan inside it, drawn as a point or only in the density
    inside = density.in_selection(shown[scatter_x[key]], shown[score], events[key])
    chosen += shown["scan_id"][inside].tolist()
chosen += flagged["scan_id"].iloc[list(table_event["selection"]["rows"])].tolist()
chosen = list(dict.fromkeys(chosen))
if chosen:
    st.success(
        f"{len(chosen)} scans selected: {', '.join(chosen[:8])}" + (" …" if len(chosen) > 8 else "")
    )
    if st.button(f"Review the {len(chosen)} selected scans in the viewer", key="open_selection"):
        state.select_scans(chosen)
        st.switch_page("app_pages/viewer.py")
else:
    st.caption(
        "Click points, or pick the box or lasso at a plot's top left and draw (or choose table "
        "rows), to review scans in the viewer; double-click a plot to clear its selection."
    )

st.subheader("Montage of flagged scans")
# a lazy section: 40 key slices and their buttons cost the browser more than every plot above
if st.toggle(f"Show the key slices of the {MONTAGE_SCANS} highest-scoring flagged scans",
             key="explorer_montage"):
    flagged_montage(state.catalog(), run_id, run.get("spacing_mm"))
