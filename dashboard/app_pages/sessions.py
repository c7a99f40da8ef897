"""Review sessions (admin): hand out scans to named reviewers, with blinded single or double reads."""

from __future__ import annotations

import numpy as np
import streamlit as st

from ctae_core.review_assignment import assign_reads
from dashboard import data, review_data, state
from data_catalog.accounts import load_accounts, users_path
from data_catalog.filters import unflagged_count, why_unflagged
from data_catalog.sessions import ReviewRefused

SOURCES = ("flagged scans", "a cluster", "random sample of unflagged scans", "current selection")
FLAG_SOURCES = (SOURCES[0], SOURCES[2])
"""The sources that read the flags."""

st.title("Review sessions")
run_id, scans = state.require_scores()
catalog, me = state.catalog(), state.reviewer()
people = sorted(set(load_accounts(users_path(catalog))) | {me})

with st.form("new_session"):
    st.subheader("New session")
    name = st.text_input("Name", key="ns_name", placeholder="e.g. flagged, December")
    source = st.radio("Scans", SOURCES, horizontal=True, key="ns_source")
    cols = st.columns(3)
    clusters = sorted(int(c) for c in scans["cluster"].dropna().unique())
    cluster = cols[0].selectbox("Cluster", clusters or [-1], key="ns_cluster")
    sample = cols[1].number_input("Sample size", 1, 100_000, 20, key="ns_sample")
    seed = cols[2].number_input("Seed", 0, 2**31 - 1, 0, key="ns_seed")
    reviewers = st.multiselect("Reviewers", people, key="ns_reviewers")
    reads = st.number_input("Reads per scan (2+: double reads by distinct reviewers)", 1, 10, 2,
                            key="ns_reads")
    show_others = st.checkbox("Reviewers see each other's reads while the session is open",
                              key="ns_others")
    show_model = st.checkbox("Reviewers see the model's verdict, score and suggestions",
                             key="ns_model")
    create = st.form_submit_button("Create session", type="primary")

unset = unflagged_count(scans)
if create and unset and source in FLAG_SOURCES:
    st.error(f"{unset:,} scored scans of run `{run_id}` have no flag yet: {why_unflagged(run_id)}. "
             "Until they have one the flagged and unflagged scans are not known, and no session "
             "is made from them.")
    create = False
if create:
    flagged = scans["is_outlier"].fillna(False).astype(bool)
    if source == "flagged scans":
        chosen = scans.loc[flagged, "scan_id"].tolist()
    elif source == "a cluster":
        chosen = scans.loc[scans["cluster"] == cluster, "scan_id"].tolist()
    elif source == "current selection":
        chosen = list(state.selection())
    else:
        pool = scans.loc[~flagged & scans["score"].notna(), "scan_id"].to_numpy()
        rng = np.random.default_rng(int(seed))
        chosen = rng.choice(pool, size=min(int(sample), len(pool)), replace=False).tolist()
    described = {"a cluster": f"cluster {cluster}",
                 "random sample of unflagged scans": f"{len(chosen)} unflagged scans, seed {seed}"}
    try:
        queues = assign_reads(chosen, reviewers, int(reads), seed=int(seed))
        review_data.create_session(
            catalog, name=name, created_by=me, run_id=run_id,
            source=f"{described.get(source, source)} of run {run_id}", reads_per_scan=int(reads),
            show_others=show_others, show_model=show_model, queues=queues)
    except (ValueError, ReviewRefused) as err:
        st.error(str(err))
    else:
        st.success(f"Session {name!r}: {len(chosen)} scans, {int(reads)} reads each, "
                   f"for {', '.join(reviewers)}.")

table = review_data.session_table(catalog, data.removed_scans(catalog)["scan_id"])
st.subheader("Sessions")
if table.empty:
    st.caption("No session yet.")
    st.stop()
if table["removed_scans"].any():
    st.caption("removed_scans: the session's scans that `ctae remove` took out of the catalog "
               "since; My reviews leaves them out, and their reads not done are no longer due.")
else:
    table = table.drop(columns=["removed_scans"])
st.dataframe(table.drop(columns=["session_id"]), hide_index=True, width="stretch",
             key="session_table")
names = dict(zip(table["session_id"], table["name"], strict=True))
chosen_id = st.selectbox("Session", list(names), format_func=names.get, key="ns_pick")
status = table.set_index("session_id").loc[chosen_id, "status"]
target = "closed" if status == "open" else "open"
if st.button("Close (unblinds it)" if target == "closed" else "Reopen", key="ns_status"):
    review_data.set_status(catalog, chosen_id, target, me)
    st.rerun()
