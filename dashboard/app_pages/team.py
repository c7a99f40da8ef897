"""Team review (admin): agreement with confidence intervals, the adjudication queue, progress."""

from __future__ import annotations

import streamlit as st

from dashboard import data, review_data, state
from dashboard.agreement import agreement_table, disagreeing_scans
from data_catalog.review import CAUSE_TAGS, VERDICTS
from data_catalog.sessions import ReviewRefused

st.title("Team review")
run_id = state.require_run()
catalog, me = state.catalog(), state.reviewer()

st.subheader("Progress per reviewer (all labels)")
progress = data.reviewer_progress(catalog, run_id)
if len(progress):
    st.dataframe(progress, hide_index=True, width="stretch", key="progress_table")
else:
    st.caption("Nobody has labelled a scan yet.")
disagree = data.disagreements(catalog, run_id)
st.subheader(f"Disagreements over all labels ({len(disagree)})")
if len(disagree):
    st.dataframe(disagree, hide_index=True, width="stretch", key="disagree_table")

table = review_data.session_table(catalog)
if table.empty:
    st.info("No review session yet: create one on the Review sessions page.")
    st.stop()
names = dict(zip(table["session_id"], table["name"], strict=True))
session_id = st.selectbox("Session", list(names), format_func=names.get, key="team_session")
reads = review_data.session_reads(catalog, session_id)

st.subheader("Agreement")
st.caption("Cohen's κ per pair of reviewers on the scans both read; Fleiss' κ over every scan "
           "with the usual number of reads; 95 % intervals from 1000 bootstrap resamples of scans.")
kappas = agreement_table(reads)
if kappas.empty:
    st.caption("No scan has been read twice yet.")
else:
    overall = kappas[(kappas["statistic"] == "Fleiss") & (kappas["measure"] == "verdict")]
    if len(overall):
        row = overall.iloc[0]
        st.metric("Fleiss' κ, verdict", f"{row['kappa']:.3f}",
                  f"95 % CI {row['ci_low']:.2f} to {row['ci_high']:.2f} · {row['scans']} scans",
                  delta_color="off", delta_arrow="off")
    st.dataframe(kappas, hide_index=True, width="stretch", key="kappa_table",
                 column_config={c: st.column_config.NumberColumn(format="%.3f")
                                for c in ("kappa", "ci_low", "ci_high")})

st.subheader("Adjudication")
final = review_data.adjudications(catalog, session_id).set_index("scan_id")
queue = disagreeing_scans(reads)
waiting = [s for s in queue if s not in final.index]
st.caption(f"{len(queue)} scans with differing verdicts, {len(waiting)} without a final verdict. "
           "The final verdict is kept apart from the reads.")
if queue:
    scan_id = st.selectbox("Scan", waiting + [s for s in queue if s in final.index],
                           key="adj_scan")
    mine = reads[reads["scan_id"] == scan_id]
    st.dataframe(mine[["reviewer", "verdict", "causes", "note", "created_at"]],
                 hide_index=True, key="adj_reads")
    if scan_id in final.index:
        st.caption(f"Final verdict: **{final.loc[scan_id, 'verdict']}** by "
                   f"{final.loc[scan_id, 'adjudicator']}")
    with st.form(f"adj_form_{scan_id}"):
        verdict = st.radio("Final verdict", VERDICTS, horizontal=True, key=f"adj_v_{scan_id}")
        causes = st.multiselect("Cause tags", CAUSE_TAGS, key=f"adj_c_{scan_id}")
        note = st.text_input("Note", key=f"adj_n_{scan_id}")
        if st.form_submit_button("Set final verdict", type="primary"):
            try:
                review_data.adjudicate(catalog, session_id=session_id, scan_id=scan_id,
                                       verdict=verdict, causes=causes, note=note, adjudicator=me)
            except ReviewRefused as err:
                st.error(str(err))
            else:
                st.rerun()
if len(final):
    st.dataframe(final.reset_index(), hide_index=True, width="stretch", key="adj_done")
