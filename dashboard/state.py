"""Session-state keys shared by the pages, and the guards that say which job to run next.

A guard shows a helpful message and stops the page (``st.stop``) when the catalog does not yet
hold what the page needs — never a traceback.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import data

CATALOG = "catalog_path"
RUN = "run_id"
IDENTITY = "identity"  # dashboard.auth.Identity, set by app.py on every run after sign-in
SELECTION = "selected_scans"
QUEUE_SOURCE = "queue_source"
QUEUE_POS = "queue_pos"


def catalog() -> str:
    """The server's catalog (CTAE_CATALOG, set by `ctae dashboard`; never chosen by a visitor)."""
    return st.session_state[CATALOG]


def run_id() -> str | None:
    """The active run chosen in the sidebar (None when the catalog has no run)."""
    return st.session_state.get(RUN)


def reviewer() -> str:
    """The signed-in identity's name ('' before sign-in): labels and exports carry it."""
    who = st.session_state.get(IDENTITY)
    return who.name if who else ""


def is_admin() -> bool:
    """True when the signed-in identity is an admin."""
    who = st.session_state.get(IDENTITY)
    return bool(who and who.is_admin)


def select_scans(scan_ids: list[str]) -> None:
    """Make ``scan_ids`` the current selection and the viewer's review queue."""
    st.session_state[SELECTION] = list(dict.fromkeys(scan_ids))
    st.session_state[QUEUE_SOURCE] = "current selection"
    st.session_state[QUEUE_POS] = 0


def selection() -> list[str]:
    """The scans selected on the explorer or feature-space scatter."""
    return st.session_state.get(SELECTION, [])


def require_scans() -> None:
    """Stop with a message when the catalog is missing or holds no scans."""
    path = catalog()
    if not data.catalog_exists(path) or data.catalog_counts(path)["scans"] == 0:
        st.info(
            f"No scans in the catalog `{path}` yet. Run `ctae ingest SOURCE --catalog {path}` "
            "to read your DICOM / NIfTI / MHA / NRRD scans (or `ctae demo-data OUT` first for "
            "a synthetic cohort), then reload this page."
        )
        st.stop()


def explain_refusals_without_scans() -> None:
    """Stop with the refusals by reason when ingest ran but every input was refused."""
    path = catalog()
    counts = data.catalog_counts(path)
    if counts["scans"] or not counts["ingest_errors"]:
        return
    errors = data.ingest_errors(path)
    by_reason = errors.groupby("reason").size().sort_values(ascending=False).rename("inputs")
    top = ", ".join(f"{n} × {reason}" for reason, n in by_reason.items())
    st.warning(
        f"No scans yet: ingest refused every input it found ({counts['ingest_errors']}: {top}). "
        "Each row below says what was wrong and what to do; fix the inputs and run "
        f"`ctae ingest SOURCE --catalog {path}` again."
    )
    st.dataframe(by_reason, width="content")
    st.dataframe(errors[["reason", "message"]], hide_index=True, width="stretch")
    st.stop()


def require_run() -> str:
    """Stop with a message when no run exists; else return the active run."""
    require_scans()
    active = run_id()
    if active is None:
        st.info(
            "The catalog has scans but no run yet. Train one with "
            f"`ctae train --catalog {catalog()} --run NAME`, then score it with "
            "`ctae score --run NAME`."
        )
        st.stop()
    return active


def require_scores() -> tuple[str, pd.DataFrame]:
    """Stop when the active run has no scores; else return (run, scan table)."""
    active = require_run()
    scans = data.scan_table(catalog(), active)
    if scans["mse_m"].notna().sum() == 0:
        st.info(
            f"Run `{active}` has no scores yet. Run `ctae score --run {active} "
            f"--catalog {catalog()}` to compute MSE / MSE_m and the threshold T."
        )
        st.stop()
    return active, scans


def require_embeddings() -> tuple[str, pd.DataFrame]:
    """Stop when the active run has no UMAP embedding; else return (run, scan table)."""
    active, scans = require_scores()
    if scans["umap_x"].notna().sum() == 0:
        st.info(
            f"Run `{active}` has scores but no feature space yet. Run `ctae embed --run "
            f"{active} --catalog {catalog()}` to compute the UMAP embedding and DBSCAN clusters."
        )
        st.stop()
    return active, scans
