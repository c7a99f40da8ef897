"""Who is using the dashboard: sign-in with a local account or the site's OpenID Connect.

Three modes, chosen by the server's configuration (never by the visitor):

- ``oidc``: ``.streamlit/secrets.toml`` has an ``[auth]`` section; ``st.login`` signs people in
  and the accounts file says which e-mails may enter and with which role.
- ``local``: the accounts file (``ctae users add``) has accounts; a name and password sign in.
- ``open``: neither; only a visitor on this machine may use the dashboard, as its admin (the
  single-user, localhost case of ``ctae dashboard``; it refuses other hosts in this mode).
"""

from __future__ import annotations

import getpass
import logging
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from data_catalog.accounts import load_accounts, users_path, verify_password

logger = logging.getLogger(__name__)

USER = "signed_in_user"
LOCAL_CLIENTS = {"127.0.0.1", "::1", "localhost"}


@dataclass(frozen=True)
class Identity:
    """The signed-in person: the name labels carry, and their role (admin | reviewer)."""

    name: str
    role: str

    @property
    def is_admin(self) -> bool:
        """True for admins (sessions, adjudication, exports, audit log, source paths)."""
        return self.role == "admin"


def oidc_configured() -> bool:
    """True when the server's secrets have an ``[auth]`` section for ``st.login``."""
    try:
        return "auth" in st.secrets
    except (FileNotFoundError, OSError, ValueError):  # no secrets file, or an unreadable one
        return False


def mode(catalog: Path | str) -> str:
    """``oidc``, ``local`` or ``open`` (see the module docstring)."""
    if oidc_configured():
        return "oidc"
    return "local" if load_accounts(users_path(catalog)) else "open"


def _oidc_identity(catalog: Path | str) -> Identity | None:
    if not st.user.is_logged_in:
        if st.button("Sign in with your organisation's account", key="oidc_login"):
            st.login()
        return None
    email = str(st.user.get("email") or "")
    account = load_accounts(users_path(catalog)).get(email)
    if account is None:
        st.error(
            f"{email or 'This account'} may not use this dashboard yet: ask an admin to run "
            f"`ctae users add {email or 'EMAIL'} --oidc --role reviewer`."
        )
        st.button("Sign out", on_click=st.logout, key="oidc_logout")
        return None
    return Identity(account.name, account.role)


def _local_sign_in(catalog: Path | str) -> None:
    with st.form("sign_in"):
        st.markdown("**Sign in to ctae**")
        name = st.text_input("User name", key="sign_in_name")
        password = st.text_input("Password", type="password", key="sign_in_password")
        submitted = st.form_submit_button("Sign in")
    if submitted:
        account = verify_password(users_path(catalog), name.strip(), password)
        if account is None:
            logger.warning("sign-in refused for %r", name)
            st.error("Wrong user name or password.")
            return
        st.session_state[USER] = account.name
        st.rerun()


def current_identity(catalog: Path | str) -> Identity | None:
    """The signed-in identity, after showing the sign-in form when nobody is; None until then.

    The role is re-read from the accounts file on every run, so a removed account stops at once.
    """
    how = mode(catalog)
    if how == "oidc":
        return _oidc_identity(catalog)
    if how == "open":
        client = st.context.ip_address  # None on localhost; not a string under AppTest
        if isinstance(client, str) and client not in LOCAL_CLIENTS:
            st.error(
                "This dashboard has no sign-in configured, so it only serves this machine. "
                "The admin adds accounts with `ctae users add NAME --role admin` (or configures "
                "OpenID Connect in .streamlit/secrets.toml)."
            )
            return None
        return Identity(getpass.getuser(), "admin")
    name = st.session_state.get(USER)
    account = load_accounts(users_path(catalog)).get(name) if name else None
    if account is None:
        st.session_state.pop(USER, None)
        _local_sign_in(catalog)
        return None
    return Identity(account.name, account.role)


def sign_out() -> None:
    """Forget the local sign-in of this browser session (OIDC: ``st.logout``)."""
    st.session_state.pop(USER, None)
    if oidc_configured() and st.user.is_logged_in:
        st.logout()
