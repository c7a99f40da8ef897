"""Team review: per-reviewer progress, scans where reviewers disagree, recent labels."""

from __future__ import annotations

import streamlit as st

from dashboard import data, state

st.title("Team review")
run_id = state.require_run()
catalog = state.catalog()
me = state.reviewer()
st.caption(
    "Every label keeps its reviewer and time; a reviewer's newest label of a scan is the "
    "one that counts, and a scan's current verdict is the newest of those."
    + (f" You are **{me}**." if me else " Enter your name in the sidebar to label.")
)

progress = data.reviewer_progress(catalog, run_id)
st.subheader("Progress per reviewer")
if len(progress):
    st.dataframe(
        progress,
        hide_index=True,
        width="stretch",
        key="progress_table",
        column_config={
            "flagged_labelled": st.column_config.ProgressColumn(
                "flagged labelled",
                format="%d",
                min_value=0,
                max_value=int(max(progress["flagged_total"].max(), 1)),
            )
        },
    )
else:
    st.info("Nobody has labelled a scan yet: open the Scan viewer to start the review.")

disagree = data.disagreements(catalog, run_id)
st.subheader(f"Disagreements ({len(disagree)})")
if len(disagree):
    event = st.dataframe(
        disagree,
        hide_index=True,
        width="stretch",
        key="disagree_table",
        on_select="rerun",
        selection_mode="multi-row",
    )
    rows = list(event["selection"]["rows"])
    chosen = disagree["scan_id"].iloc[rows].tolist() if rows else disagree["scan_id"].tolist()
    label = "selected" if rows else "all disagreeing"
    if st.button(f"Review the {len(chosen)} {label} scans in the viewer", key="team_open"):
        state.select_scans(chosen)
        st.switch_page("app_pages/viewer.py")
else:
    st.caption("No disagreements: every scan's reviewers agree.")
