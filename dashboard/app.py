"""The ctae triage dashboard: `ctae dashboard` or `streamlit run dashboard/app.py`.

The shared sidebar picks the catalog (default: $CTAE_CATALOG via CatalogSettings), the active
run and the reviewer's name; ``st.navigation`` then runs the chosen page.
"""

from __future__ import annotations

import streamlit as st

from dashboard import data, state
from data_catalog import CatalogBusyError, CatalogSettings

PAGES = [
    st.Page("app_pages/overview.py", title="Overview", icon=":material/dashboard:", default=True),
    st.Page("app_pages/explorer.py", title="Outlier explorer", icon=":material/scatter_plot:"),
    st.Page("app_pages/feature_space.py", title="Feature space", icon=":material/bubble_chart:"),
    st.Page("app_pages/viewer.py", title="Scan viewer and review", icon=":material/visibility:"),
    st.Page("app_pages/team.py", title="Team review", icon=":material/groups:"),
    st.Page("app_pages/export.py", title="Export", icon=":material/download:"),
]


def sidebar() -> None:
    """Catalog path, active run and reviewer name, shared by every page."""
    if state.CATALOG not in st.session_state:
        st.session_state[state.CATALOG] = str(CatalogSettings.resolve().catalog_path)
    st.sidebar.text_input("Catalog", key=state.CATALOG, help="DuckDB catalog file")
    catalog = state.catalog()
    runs = data.run_table(catalog)["run_id"].tolist() if data.catalog_exists(catalog) else []
    if state.RUN in st.session_state and st.session_state[state.RUN] not in runs:
        del st.session_state[state.RUN]
    if state.RUN not in st.session_state and st.query_params.get("run") in runs:
        st.session_state[state.RUN] = st.query_params["run"]  # a shared link names the run
    if runs:
        st.sidebar.selectbox("Active run", runs, key=state.RUN, help="newest first; ?run=NAME in the URL picks one")
    else:
        st.sidebar.caption("No run yet")
    st.sidebar.text_input(
        "Reviewer",
        key=state.REVIEWER,
        placeholder="your name",
        help="Recorded with every label and export",
    )


st.set_page_config(page_title="ctae triage", page_icon=":material/radiology:", layout="wide")
navigation = st.navigation(PAGES)
try:
    sidebar()
    navigation.run()
except CatalogBusyError as err:
    st.warning(f"The catalog is busy: {err}. Reload the page in a moment.")
