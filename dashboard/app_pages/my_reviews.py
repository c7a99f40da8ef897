"""My reviews: the signed-in reviewer's shuffled queue in a review session, labelled by keyboard.

Keys: i / o / u label inlier / outlier / unsure and show the next scan; ← → move; 1–7 toggle
cause tags; a accepts the suggested tags. A read is saved to the review journal (never waits
for a job) before it is acknowledged.
"""

from __future__ import annotations

import streamlit as st

from dashboard import data, review_data, state
from dashboard.review_parts import (
    TAG_KEYS,
    VERDICT_KEYS,
    more_like_this,
    others_reads,
    scan_images,
)
from dashboard.shortcuts import add_shortcuts
from dashboard.suggest import suggested_causes
from data_catalog.review import CAUSE_TAGS, VERDICTS
from data_catalog.sessions import ReviewRefused

st.title("My reviews")
catalog, me = state.catalog(), state.reviewer()
mine = review_data.my_sessions(catalog, me)
if not mine:
    st.info("You have no open review session. An admin hands out scans on the Review sessions page.")
    st.stop()
names = {s["session_id"]: s["name"] for s in mine}
session_id = st.selectbox("Session", list(names), format_func=names.get, key="mr_session")
session = next(s for s in mine if s["session_id"] == session_id)
order, reads = review_data.queue_and_reads(catalog, session_id, me)
pos_key, tags_key = f"mr_pos_{session_id}", f"mr_tags_{session_id}"
if pos_key not in st.session_state:
    st.session_state[pos_key] = next((i for i, s in enumerate(order) if s not in reads), 0)
pos = min(max(st.session_state[pos_key], 0), len(order) - 1)
scan_id = order[pos]
scans = data.scan_table(catalog, session["run_id"], with_labels=False).set_index(
    "scan_id", drop=False)
scan = scans.loc[scan_id]
show_model = bool(session["show_model"])
suggested = suggested_causes(scan) if show_model else []


def _tags() -> set[str]:
    chosen = st.session_state.setdefault(tags_key, {})
    if scan_id not in chosen:
        chosen[scan_id] = set(reads[scan_id]["causes"]) if scan_id in reads else set()
    return chosen[scan_id]


def _move(delta: int) -> None:
    st.session_state[pos_key] = min(max(pos + delta, 0), len(order) - 1)


def _toggle(tag: str) -> None:
    _tags().symmetric_difference_update({tag})


def _accept() -> None:
    _tags().update(suggested)


def _label(verdict: str, scan_id: str) -> None:
    note = st.session_state.get(f"mr_note_{scan_id}") or None
    try:
        review_data.record_reads(catalog, session_id=session_id, reviewer=me, scan_ids=[scan_id],
                                 verdict=verdict, causes=sorted(_tags()), note=note)
    except ReviewRefused as err:
        st.session_state["mr_flash"] = ("error", str(err))
        return
    st.session_state["mr_flash"] = ("ok", f"Saved: {scan_id} → {verdict}")
    _move(1)


if flash := st.session_state.pop("mr_flash", None):
    (st.success if flash[0] == "ok" else st.error)(flash[1])
done = sum(s in reads for s in order)
st.progress(done / len(order), text=f"Scan {pos + 1} of {len(order)} · read {done} of {len(order)}")
nav = st.columns([1, 1, 6])
nav[0].button("← Previous", key="kb_prev", on_click=_move, args=(-1,), disabled=pos == 0)
nav[1].button("Next →", key="kb_next", on_click=_move, args=(1,), disabled=pos == len(order) - 1)
st.subheader(f"Scan `{scan_id}`")
if scan_id in reads:
    st.caption(f"Your read: **{reads[scan_id]['verdict']}** (a new one replaces it)")

images, form = st.columns([3, 2])
with images:
    scan_images(scan, show_model)
with form:
    verdicts = st.columns(len(VERDICTS))
    for col, verdict in zip(verdicts, VERDICTS, strict=True):
        col.button(f"{verdict.capitalize()} `{VERDICT_KEYS[verdict]}`", key=f"kb_{verdict}",
                   on_click=_label, args=(verdict, scan_id), type="primary", width="stretch")
    st.markdown("**Cause tags**")
    chosen = _tags()
    tag_cols = st.columns(2)
    for i, tag in enumerate(CAUSE_TAGS):
        tag_cols[i % 2].button(f"{'☑' if tag in chosen else '☐'} {tag} `{TAG_KEYS[i]}`",
                               key=f"kb_tag_{i + 1}", on_click=_toggle, args=(tag,), width="stretch")
    if suggested:
        st.button(f"Accept suggested: {', '.join(suggested)} `a`", key="kb_accept",
                  on_click=_accept)
    st.text_input("Note (optional)", key=f"mr_note_{scan_id}")
    if show_model:
        flag = "flagged" if scan["is_outlier"] else "not flagged"
        st.caption(f"Model: {flag} · score {scan['score']:.4g}")
    if session["show_others"]:
        others_reads(catalog, session_id, scan_id, me)

add_shortcuts({"i": "kb_inlier", "o": "kb_outlier", "u": "kb_unsure", "arrowleft": "kb_prev",
               "arrowright": "kb_next", "a": "kb_accept",
               **{str(i + 1): f"kb_tag_{i + 1}" for i in range(len(CAUSE_TAGS))}})
more_like_this(catalog, session, me, scans, order, reads, scan_id)
