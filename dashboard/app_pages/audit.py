"""Audit log (admin): every review change — who, what, when, before, after — newest first."""

from __future__ import annotations

import streamlit as st

from dashboard import review_data, state

st.title("Audit log")
log = review_data.audit_log(state.catalog(), limit=int(st.number_input(
    "Newest events", 10, 100_000, 500, step=100, key="audit_limit")))
if log.empty:
    st.caption("Nothing has changed yet.")
else:
    who = st.multiselect("Who", sorted(log["who"].unique()), key="audit_who")
    st.dataframe(log[log["who"].isin(who)] if who else log, hide_index=True, width="stretch",
                 key="audit_table")
