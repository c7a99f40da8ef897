"""The ctae triage dashboard: `ctae dashboard` or `streamlit run dashboard/app.py`.

Visitors sign in first (dashboard/auth.py); the pages they see depend on their role. The
catalog is the server's setting ($CTAE_CATALOG via CatalogSettings), never a visitor's; the
shared sidebar picks the active run; ``st.navigation`` then runs the chosen page.
"""

from __future__ import annotations

import streamlit as st

from dashboard import auth, data, review_data, state
from dashboard.absorber import start_absorber
from data_catalog import CatalogBusyError, CatalogError, CatalogSettings

EXPLORE = [
    st.Page("app_pages/overview.py", title="Overview", icon=":material/dashboard:", default=True),
    st.Page("app_pages/explorer.py", title="Outlier explorer", icon=":material/scatter_plot:"),
    st.Page("app_pages/feature_space.py", title="Feature space", icon=":material/bubble_chart:"),
    st.Page("app_pages/viewer.py", title="Scan viewer", icon=":material/visibility:"),
]
MY_REVIEWS = st.Page("app_pages/my_reviews.py", title="My reviews", icon=":material/task_alt:")
ADMIN = [
    st.Page("app_pages/sessions.py", title="Review sessions", icon=":material/assignment:"),
    st.Page("app_pages/team.py", title="Team review", icon=":material/groups:"),
    st.Page("app_pages/audit.py", title="Audit log", icon=":material/history:"),
    st.Page("app_pages/export.py", title="Export", icon=":material/download:"),
]


def pages_for(who: auth.Identity, catalog: str) -> dict[str, list]:
    """Admins see everything; a reviewer in a blinded open session sees only their queue."""
    if who.is_admin:
        return {"Explore": EXPLORE, "Review": [MY_REVIEWS], "Admin": ADMIN}
    if review_data.is_blinded(catalog, who.name):
        return {"Review": [MY_REVIEWS]}
    return {"Explore": EXPLORE, "Review": [MY_REVIEWS]}


def sidebar(who: auth.Identity) -> None:
    """Who is signed in, and the active run, shared by every page."""
    st.sidebar.markdown(f"Signed in as **{who.name}** ({who.role})")
    if auth.mode(state.catalog()) != "open":
        st.sidebar.button("Sign out", on_click=auth.sign_out, key="sign_out")
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


st.set_page_config(page_title="ctae triage", page_icon=":material/radiology:", layout="wide")
st.session_state[state.CATALOG] = str(CatalogSettings.resolve().catalog_path)
start_absorber(state.catalog())
try:
    identity = auth.current_identity(state.catalog())
    if identity is None:
        st.session_state.pop(state.IDENTITY, None)
        st.stop()
    st.session_state[state.IDENTITY] = identity
    navigation = st.navigation(pages_for(identity, state.catalog()))
    sidebar(identity)
    navigation.run()
except CatalogBusyError as err:
    st.warning(f"The catalog is busy: {err}. Reload the page in a moment.")
except CatalogError as err:  # no catalog this ctae can use, an unreadable accounts file
    st.error(f"The dashboard cannot use its files: {err}.")
# Any other error: `ctae dashboard` serves with client.showErrorDetails = "none", so visitors see
# a generic message and the traceback goes to the server's log (tests still see the exception).
