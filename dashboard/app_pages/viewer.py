"""Scan viewer: three planes of the original, reconstruction and |error| overlay, HU windows, the
scan's HU histogram against the dataset's, and facts. Labels are given on My reviews."""

from __future__ import annotations

import streamlit as st

from dashboard import charts, data, review_queue, state
from dashboard.viewer_parts import (
    evidence_caption,
    facts_table,
    scan_facts,
    show_scan,
)

st.title("Scan viewer")
run_id, scans = state.require_scores()
catalog = state.catalog()
run = data.run_info(catalog, run_id) or {}

if flash := st.session_state.pop("viewer_flash", None):
    st.success(flash)
if (linked := st.query_params.get("scan")) and st.session_state.get("linked_scan") != linked:
    st.session_state["linked_scan"] = linked  # ?scan=ID in a shared link opens that scan, once
    state.select_scans([linked])
if state.QUEUE_SOURCE not in st.session_state:
    st.session_state[state.QUEUE_SOURCE] = review_queue.FLAGGED_FIRST
# the queue's controls sit above the viewer but are drawn after it, so that the viewer's element
# reaches the browser first and its iframe starts while the rest of the page is drawn
controls, heading = st.container(), st.container()
queue = review_queue.build_queue(scans, st.session_state[state.QUEUE_SOURCE], state.selection())
pos = min(max(int(st.session_state.get(state.QUEUE_POS, 0)), 0), max(len(queue) - 1, 0))
st.session_state[state.QUEUE_POS] = pos


def _step(delta: int) -> None:
    st.session_state[state.QUEUE_POS] = min(max(pos + delta, 0), len(queue) - 1)


def queue_controls() -> None:
    """The review queue's source, next / previous and progress."""
    source = st.radio("Review queue", review_queue.SOURCES, key=state.QUEUE_SOURCE,
                      horizontal=True)
    if not queue:
        return
    reviewed, total = review_queue.queue_progress(scans, queue, source)
    nav = st.columns([1, 1, 4])
    nav[0].button("← Previous", on_click=_step, args=(-1,), disabled=pos == 0, key="prev")
    nav[1].button("Next →", on_click=_step, args=(1,), disabled=pos == len(queue) - 1, key="next")
    nav[2].progress(
        reviewed / total if total else 0.0,
        text=f"Scan {pos + 1:,} of {len(queue):,} · reviewed {reviewed:,} of {total:,}",
    )


if not queue:
    with controls:
        queue_controls()
    st.info(
        "The selection is empty: select scans on the Outlier explorer or Feature space "
        "page, or switch to the flagged queue."
    )
    st.stop()

scan = scans[scans["scan_id"] == queue[pos]].iloc[0]
heading.subheader(f"Scan `{scan['scan_id']}`")
show_scan(scan, run, above=heading)
with controls:
    queue_controls()

left, right = st.columns([3, 2])
with left:  # drawn on demand: Plotly's 4.7 MB bundle would load while the series does
    if st.toggle("HU histogram against the dataset's", key="hu_hist_shown"):
        st.plotly_chart(
            charts.hu_histogram(
                data.scan_hu_histogram(catalog, scan["scan_id"]), data.dataset_hu_histogram(catalog)
            ),
            key="hu_hist",
        )
with right:
    evidence = evidence_caption(scan)
    if evidence:
        st.caption(evidence)
    # drawn when opened: a 30-row table (and the label history's data grid) would be rendered by
    # the browser while the series loads
    facts = st.expander("Scan facts", key="facts_open", on_change="rerun")
    if facts.open:
        with facts:  # a markdown table: no data-grid bundle for 30 rows
            st.markdown(facts_table(scan_facts(scan, admin=state.is_admin())))
            history = data.label_history(catalog, scan["scan_id"]) if state.is_admin() else []
            if len(history):
                st.caption("Label history (newest first)")
                st.dataframe(history, hide_index=True, width="stretch")

st.caption("Labels are given in a review session: see My reviews.")
