"""My reviews: the signed-in reviewer's shuffled queue in a review session, labelled by keyboard.

Keys: i / o / u label inlier / outlier / unsure and show the next scan; ← → move; 1–7 toggle
cause tags; a accepts the suggested tags. The pane is drawn in the browser (a component that
holds the queue and the next scans' planes), so a key press shows the next scan at once; the
label is written to the review journal (never waits for a job) before the pane says "Saved".
With the browser pane off (or failed), the server draws each scan: the scan and its verdicts
are then one fragment, and a label reruns only that pane.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from dashboard import auth, data, review_component, review_data, state
from dashboard.absorber import start_absorber
from dashboard.review_parts import (
    FLASH,
    TAG_KEYS,
    VERDICT_KEYS,
    VIEWS,
    forget_queue,
    more_like_this,
    other_slices,
    others_reads,
    prefetch_planes,
    scan_images,
)
from dashboard.shortcuts import add_shortcuts
from dashboard.suggest import suggested_causes
from data_catalog.review import CAUSE_TAGS, VERDICTS
from data_catalog.sessions import ReviewRefused

ACKED = "mr_acked"  # label id → "" (in the journal) or why refused, for this browser session
BROWSER_FAILED = "mr_browser_failed"
MAX_PENDING = 500  # labels one value may carry


def show_flash() -> None:
    """The acknowledgement (or refusal) of the last label written by the server's pane."""
    if flash := st.session_state.pop(FLASH, None):
        # an explicit icon: else Streamlit loads its emoji catalog (~0.5 s) on the first label
        if flash[0] == "ok":
            st.success(flash[1], icon=":material/check_circle:")
        else:
            st.error(flash[1], icon=":material/error:")


def _tags(tags_key: str, scan_id: str, reads: dict) -> set[str]:
    chosen = st.session_state.setdefault(tags_key, {})
    if scan_id not in chosen:
        chosen[scan_id] = set(reads[scan_id]["causes"]) if scan_id in reads else set()
    return chosen[scan_id]


def in_catalog(order: list[str], table: Any) -> list[str]:
    """The queue's scans that the catalog still holds (`ctae remove` takes scans out of it; the
    session keeps them, with any reads of them), in queue order."""
    held = set(table["scan_id"])
    return [scan_id for scan_id in order if scan_id in held]


def _removed_note(queue: list[str], order: list[str]) -> None:
    if len(order) < len(queue):
        st.caption(f"{len(queue) - len(order)} scan(s) of your queue were removed from the "
                   "catalog since the session began; they are left out.")


def _move(pos_key: str, to: int, size: int) -> None:
    st.session_state[pos_key] = min(max(to, 0), size - 1)


def _label(verdict: str, scan_id: str, pos: int, ctx: dict[str, Any]) -> None:
    """Write the read to the journal first (durable), then acknowledge it and move on."""
    if not auth.still_signed_in(ctx["catalog"]):
        st.session_state[FLASH] = ("error", "You are signed out: sign in again to label.")
        return
    note = st.session_state.get(f"mr_note_{scan_id}") or None
    causes = sorted(_tags(ctx["tags_key"], scan_id, ctx["reads"]))
    try:
        review_data.record_reads(ctx["catalog"], session_id=ctx["session_id"], reviewer=ctx["me"],
                                 scan_ids=[scan_id], verdict=verdict, causes=causes, note=note)
    except ReviewRefused as err:
        st.session_state[FLASH] = ("error", str(err))
        return
    forget_queue(ctx["session_id"])
    st.session_state[FLASH] = ("ok", f"Saved: {scan_id} → {verdict}")
    _move(ctx["pos_key"], pos + 1, ctx["size"])
    start_absorber(ctx["catalog"])  # into the catalog within seconds (a fragment skips app.py)


@st.fragment
def review_pane(catalog: str, me: str, session: dict[str, Any]) -> None:
    """The shown scan, its verdict buttons and cause tags, progress and "more like this"."""
    show_flash()  # the acknowledgement first
    if not auth.still_signed_in(catalog):  # signed out elsewhere, or the account changed
        st.rerun()  # the whole page: its sign-in form
    session_id = session["session_id"]
    queue, reads = review_data.queue_and_reads(catalog, session_id, me)
    table = data.scan_table(catalog, session["run_id"], with_labels=False)
    order = in_catalog(queue, table)
    _removed_note(queue, order)
    if not order:
        st.info("Every scan of your queue has been removed from the catalog.")
        return
    pos_key, tags_key = f"mr_pos_{session_id}", f"mr_tags_{session_id}"
    if pos_key not in st.session_state:
        st.session_state[pos_key] = next((i for i, s in enumerate(order) if s not in reads), 0)
    pos = min(max(st.session_state[pos_key], 0), len(order) - 1)
    scan_id = order[pos]
    scans = table[table["scan_id"].isin(order)].set_index("scan_id", drop=False)  # the queue's
    scan = scans.loc[scan_id]
    show_model = bool(session["show_model"])
    suggested = suggested_causes(scan) if show_model else []
    ctx = {"catalog": catalog, "me": me, "session_id": session_id, "pos_key": pos_key,
           "tags_key": tags_key, "reads": reads, "size": len(order)}
    chosen = _tags(tags_key, scan_id, reads)

    done = sum(s in reads for s in order)
    st.progress(done / len(order),
                text=f"Scan {pos + 1} of {len(order)} · read {done} of {len(order)}")
    nav = st.columns([1, 1, 6])
    nav[0].button("← Previous", key="kb_prev", on_click=_move, args=(pos_key, pos - 1, len(order)),
                  disabled=pos == 0)
    nav[1].button("Next →", key="kb_next", on_click=_move, args=(pos_key, pos + 1, len(order)),
                  disabled=pos == len(order) - 1)
    st.subheader(f"Scan `{scan_id}`")
    if scan_id in reads:
        st.caption(f"Your read: **{reads[scan_id]['verdict']}** (a new one replaces it)")

    images, form = st.columns([3, 2])
    with form:  # the verdicts first: they answer keys before the planes are drawn
        verdicts = st.columns(len(VERDICTS))
        for col, verdict in zip(verdicts, VERDICTS, strict=True):
            col.button(f"{verdict.capitalize()} `{VERDICT_KEYS[verdict]}`", key=f"kb_{verdict}",
                       on_click=_label, args=(verdict, scan_id, pos, ctx), type="primary",
                       width="stretch")
        st.markdown("**Cause tags**")
        tag_cols = st.columns(2)
        for i, tag in enumerate(CAUSE_TAGS):
            tag_cols[i % 2].button(f"{'☑' if tag in chosen else '☐'} {tag} `{TAG_KEYS[i]}`",
                                   key=f"kb_tag_{i + 1}", on_click=chosen.symmetric_difference_update,
                                   args=({tag},), width="stretch")
        if suggested:
            st.button(f"Accept suggested: {', '.join(suggested)} `a`", key="kb_accept",
                      on_click=chosen.update, args=(suggested,))
        st.text_input("Note (optional)", key=f"mr_note_{scan_id}")
        if show_model:
            flag = "flagged" if scan["is_outlier"] else "not flagged"
            st.caption(f"Model: {flag} · score {scan['score']:.4g}")
        if session["show_others"]:
            others_reads(catalog, session_id, scan_id, me)
    with images:
        scan_images(scan, show_model)
    more_like_this(catalog, session, me, scans, order, reads, scan_id)
    following = [s for s in order[pos + 1:] if s not in reads][:2]
    prefetch_planes([scans.loc[s] for s in following], show_model)


def _save(catalog: str, me: str, session_id: str, value: dict[str, Any]) -> dict[str, str]:
    """Write the browser's unacknowledged labels to the journal (each once); label id → "" once
    durable, else why it was refused."""
    sent = [label for label in value.get("pending") or []
            if isinstance(label, dict) and isinstance(label.get("id"), str)][:MAX_PENDING]
    known = st.session_state.setdefault(ACKED, {})
    if new := [label for label in sent if label["id"] not in known]:
        known.update(review_data.record_labels(catalog, session_id, me, new))
    return {label["id"]: known[label["id"]] for label in sent if label["id"] in known}


def _others(catalog: str, session_id: str, me: str) -> dict[str, str]:
    reads = review_data.session_reads(catalog, session_id)
    reads = reads[reads["reviewer"] != me]
    return {scan: ", ".join(f"{r.reviewer}: {r.verdict}" for r in rows.itertuples())
            for scan, rows in reads.groupby("scan_id")}


def _queue_view(catalog: str, me: str, session: dict[str, Any], at: str | None,
                before: dict[str, Any] | None) -> dict[str, Any]:
    """The reviewer's queue as the pane shows it, read from the journal and the catalog; the
    scans' facts are taken from ``before`` (the previous view) while the catalog's are the same."""
    session_id, show_model = session["session_id"], bool(session["show_model"])
    queue, reads = review_data.queue_and_reads(catalog, session_id, me)
    table = data.scan_table(catalog, session["run_id"], with_labels=False)
    order = in_catalog(queue, table)
    if before is not None and before["table"] is table and before["order"] == order:
        scans, info = before["scans"], before["info"]
    else:
        scans = table[table["scan_id"].isin(order)].set_index("scan_id", drop=False)
        info = review_component.scan_items(scans, order, show_model)
    start = next((i for i, s in enumerate(order) if s not in reads), 0)
    others = _others(catalog, session_id, me) if session["show_others"] else {}
    return {"queue": queue, "order": order, "reads": reads, "table": table, "scans": scans, "info": info,
            "start": start, "pos": order.index(at) if at in order else start,
            "items": review_component.queue_items(info, order, reads, others)}


def _with_saved(items: list[dict[str, Any]], labels: list[Any], acks: dict[str, str]) -> None:
    """Mark the reads just written as the reviewer's reads of their scans."""
    by_id = {item["id"]: item for item in items}
    for label in labels:
        if (isinstance(label, dict) and isinstance(label.get("id"), str)
                and acks.get(label["id"]) == "" and label.get("scan") in by_id):
            by_id[label["scan"]]["read"] = {"verdict": label.get("verdict"),
                                            "causes": label.get("causes") or [],
                                            "note": label.get("note") or None}


@st.fragment
def browser_pane(catalog: str, me: str, session: dict[str, Any]) -> None:
    """The review pane drawn in the browser. A run the pane asked for (a label, a move) writes
    the labels it sent, then gives the pane their acknowledgement with the queue as the previous
    run read it (plus these reads), and only then re-reads the queue for the next run and draws
    the planes of the scans ahead: nothing but the journal write waits before "Saved"."""
    if not auth.still_signed_in(catalog):  # signed out elsewhere: the page's sign-in form
        st.rerun()
    session_id, show_model = session["session_id"], bool(session["show_model"])
    key = f"mr_pane_{session_id}"
    value = st.session_state.get(key)
    value = value if isinstance(value, dict) else {}  # what a browser sends is not trusted
    if value.get("failed"):
        st.session_state[BROWSER_FAILED] = value["failed"]
        st.rerun()
    acks = _save(catalog, me, session_id, value)
    views = st.session_state.setdefault(VIEWS, {})
    view = views.get(session_id)
    # the previous run's queue serves only a run the pane asked for (not a page run; a label
    # written elsewhere drops it): the reviewer's own reads are all it lacks, added here
    asked = view is not None and view["value"] != value
    if not asked:
        view = _queue_view(catalog, me, session, value.get("at"), view)
        _removed_note(view["queue"], view["order"])
        if not view["order"]:
            st.info("Every scan of your queue has been removed from the catalog.")
            return
        review_component.draw_ahead(  # the shown scan and the next, drawn before the pane
            [view["scans"].loc[s] for s in view["order"][view["pos"]:view["pos"] + 2]], show_model)
    _with_saved(view["items"], value.get("pending") or [], acks)
    review_component.review_pane(key=key, session_id=session_id, reviewer=me,
                                 items=view["items"], start=view["start"], acks=acks,
                                 tags=CAUSE_TAGS, verdict_keys=VERDICT_KEYS)
    if acks:
        start_absorber(catalog)  # into the catalog within seconds (a fragment skips app.py)
    if asked:  # fresh for the next run
        view = _queue_view(catalog, me, session, value.get("at"), view)
    views[session_id] = {**view, "value": value}
    show_flash()  # a bulk label's acknowledgement
    order, pos = view["order"], view["pos"]
    other_slices(view["scans"].loc[order[pos]], show_model)
    more_like_this(catalog, session, me, view["scans"], order, view["reads"], order[pos])
    review_component.draw_ahead(  # off the label's path: the browser fetches them ahead
        [view["scans"].loc[s] for s in order[pos:pos + review_component.AHEAD + 2]], show_model)


st.title("My reviews")
catalog_path, reviewer = state.catalog(), state.reviewer()
mine = review_data.my_sessions(catalog_path, reviewer)
if not mine:
    st.info("You have no open review session. An admin hands out scans on the Review sessions page.")
    st.stop()
names = {s["session_id"]: s["name"] for s in mine}
chosen_id = st.selectbox("Session", list(names), format_func=names.get, key="mr_session")
in_browser = st.toggle("Draw the pane in the browser (the next scan at the key press)", value=True,
                       key="mr_browser", help="Off: the server draws each scan, with an "
                       "axial-slice slider; each key press waits for it.")
if in_browser and (why := st.session_state.get(BROWSER_FAILED)):
    st.warning(f"The browser pane failed ({why}); the server draws the scans instead.")
    in_browser = False
chosen_session = next(s for s in mine if s["session_id"] == chosen_id)
if in_browser:
    browser_pane(catalog_path, reviewer, chosen_session)  # it answers the keys itself
else:
    add_shortcuts({"i": "kb_inlier", "o": "kb_outlier", "u": "kb_unsure", "arrowleft": "kb_prev",
                   "arrowright": "kb_next", "a": "kb_accept",
                   **{str(i + 1): f"kb_tag_{i + 1}" for i in range(len(CAUSE_TAGS))}})
    review_pane(catalog_path, reviewer, chosen_session)
