"""Pieces of the My reviews page: the scan's planes, others' reads, "more like this"."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from ctae_core.io.volume_store import VOLUME_UNREADABLE
from dashboard import auth, data, review_data, slices
from dashboard.absorber import start_absorber
from dashboard.review_component import error_path, plane_pngs
from dashboard.viewer_parts import EVIDENCE_NAMES, slice_slider
from data_catalog.review import VERDICTS
from data_catalog.sessions import ReviewRefused

VERDICT_KEYS = {"inlier": "i", "outlier": "o", "unsure": "u"}
TAG_KEYS = [str(i + 1) for i in range(9)]
FLASH = "mr_flash"  # the acknowledgement My reviews shows on its next run
CONFIRM = "mlt_confirm"
VIEWS = "mr_views"  # session id → the queue as the browser pane was last given it


def forget_queue(session_id: str) -> None:
    """Drop the browser pane's last queue of a session: a label written outside the pane (a
    bulk label, the server-rendered pane) changes what the queue holds."""
    st.session_state.get(VIEWS, {}).pop(session_id, None)


@st.cache_data(max_entries=64, show_spinner=False)
def _planes(volume_path: str, error_path: str | None, z: int,
            spacing_mm: float) -> list[str]:
    """The three planes through (z, middle row, middle column) as PNG data URLs, cached per scan
    and slice. A data URL rides in the page's update itself: the browser draws the next scan
    without fetching its images in another round trip."""
    return [f"data:image/png;base64,{base64.b64encode(png).decode()}"
            for png in plane_pngs(volume_path, error_path, spacing_mm, z)]


def _axial_slider(scan: pd.Series) -> tuple[int, int] | None:
    """(chosen axial slice, slices) from a slider at the scan's middle; None when its volume is
    missing from the store or damaged."""
    try:
        depth = data.volume(scan["volume_path"]).shape[0]
    except VOLUME_UNREADABLE:
        return None
    return slice_slider(st, "Axial slice", depth, depth // 2, key=f"mr_z_{scan['scan_id']}"), depth


def scan_images(scan: pd.Series, show_model: bool) -> None:
    """The three planes through the scan's middle (axial slice chosen by a slider); the |error|
    overlay only when the session shows the model."""
    if (chosen := _axial_slider(scan)) is None:
        st.warning("This scan's stored volume is missing or damaged (`ctae ingest` of its source "
                   "stores it again); label it from its facts.")
        return
    z = chosen[0]
    pngs = _planes(scan["volume_path"], error_path(scan, show_model), z,
                   float(scan["spacing_mm"]))
    for col, plane, png in zip(st.columns(3), slices.PLANES, pngs, strict=True):
        col.image(png, caption=plane, width="stretch")


def other_slices(scan: pd.Series, show_model: bool) -> None:
    """Below the browser's pane, which shows the middle slices: any axial slice of the shown
    scan, drawn by the server (a slice off the middle only, so a label draws nothing here)."""
    with st.expander(f"Other axial slices of `{scan['scan_id']}`"):
        if (chosen := _axial_slider(scan)) is None:
            st.caption("This scan's stored volume is missing or damaged.")
            return
        z, depth = chosen
        if z != depth // 2:
            axial = _planes(scan["volume_path"], error_path(scan, show_model), z,
                            float(scan["spacing_mm"]))[0]
            st.image(axial, caption=f"axial slice {z} of {depth}", width=420)


def prefetch_planes(upcoming: list[pd.Series], show_model: bool) -> None:
    """Draw the next scans' middle planes into the cache, so a label shows them at once."""
    for scan in upcoming:
        try:
            depth = data.volume(scan["volume_path"]).shape[0]
            _planes(scan["volume_path"], error_path(scan, show_model), depth // 2,
                    float(scan["spacing_mm"]))
        except VOLUME_UNREADABLE:
            continue


def others_reads(catalog: str, session_id: str, scan_id: str, me: str) -> None:
    """Other reviewers' reads of this scan (only when the session shows them)."""
    reads = review_data.session_reads(catalog, session_id)
    others = reads[(reads["scan_id"] == scan_id) & (reads["reviewer"] != me)]
    if len(others):
        st.caption("Other reviewers: " + ", ".join(
            f"{r.reviewer}: {r.verdict}" for r in others.itertuples()))


def _points(catalog: str, run_id: str | None, scans: pd.DataFrame, ids: list[str],
            space: str) -> np.ndarray | None:
    if space == "evidence":
        return scans.loc[ids, list(EVIDENCE_NAMES)].to_numpy(dtype=float)
    latents = data.latent_table(catalog, run_id).set_index("scan_id")["latent"]
    if not set(ids) <= set(latents.index):
        return None
    return np.stack([np.asarray(latents[i], dtype=float) for i in ids])


def _candidates(scans: pd.DataFrame, order: list[str], reads: dict, scan_id: str,
                catalog: str, session: dict[str, Any], how: str, k: int) -> list[str]:
    pool = [scan_id, *[s for s in order if s not in reads and s != scan_id]]
    if how == "same cluster":
        cluster = scans.loc[scan_id, "cluster"]
        if pd.isna(cluster) or cluster < 0:
            return []
        return [s for s in pool[1:] if scans.loc[s, "cluster"] == cluster]
    points = _points(catalog, session["run_id"], scans, pool, how.split()[-1])
    if points is None or len(pool) < 2:
        return []
    from ctae_core.similar import nearest  # sklearn: imported when first asked for, off page load

    return [pool[i] for i in nearest(points, 0, k)]


def more_like_this(catalog: str, session: dict[str, Any], me: str, scans: pd.DataFrame,
                   order: list[str], reads: dict, scan_id: str) -> None:
    """The unread scans of my queue nearest to this one, labelled together after a confirmation."""
    with st.expander("More like this: label similar scans of your queue together"):
        if not st.toggle("Find similar scans", key="mlt_on"):
            return
        cols = st.columns([2, 1, 1])
        how = cols[0].radio("Similar by", ["nearest in evidence", "nearest in latent",
                                          "same cluster"], horizontal=True, key="mlt_how")
        k = cols[1].number_input("How many", 1, 50, 8, key="mlt_k")
        verdict = cols[2].selectbox("Verdict", VERDICTS, index=1, key="mlt_verdict")
        found = _candidates(scans, order, reads, scan_id, catalog, session, how, int(k))
        if not found:
            st.caption("No similar unread scans in your queue.")
            return
        chosen = st.multiselect("Scans to label", found, default=found, key=f"mlt_sel_{scan_id}")
        if st.button(f"Label {len(chosen)} scans as {verdict} …", key="mlt_ask",
                     disabled=not chosen):
            st.session_state[CONFIRM] = (tuple(chosen), verdict)
        pending = st.session_state.get(CONFIRM)
        if pending and pending == (tuple(chosen), verdict):
            st.warning(f"Label these {len(chosen)} scans **{verdict}** as your read?")
            yes, no = st.columns(2)
            yes.button("Yes, label them", key="mlt_yes", type="primary", on_click=_bulk_label,
                       args=(catalog, session["session_id"], me, list(chosen), verdict))
            no.button("Cancel", key="mlt_no", on_click=st.session_state.pop,
                      args=(CONFIRM, None))


def _bulk_label(catalog: str, session_id: str, me: str, scan_ids: list[str], verdict: str) -> None:
    """The confirmed bulk read: written to the journal, then acknowledged."""
    if not auth.still_signed_in(catalog):
        st.session_state[FLASH] = ("error", "You are signed out: sign in again to label.")
        return
    try:
        review_data.record_reads(catalog, session_id=session_id, reviewer=me, scan_ids=scan_ids,
                                 verdict=verdict)
    except ReviewRefused as err:
        st.session_state[FLASH] = ("error", str(err))
        return
    st.session_state.pop(CONFIRM, None)
    forget_queue(session_id)
    st.session_state[FLASH] = ("ok", f"Saved: {len(scan_ids)} scans → {verdict}")
    start_absorber(catalog)
