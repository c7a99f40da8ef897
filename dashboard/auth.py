"""Who is using the dashboard: sign-in with a local account or the site's OpenID Connect.

Three modes, chosen by the server's configuration (never by the visitor):

- ``oidc``: ``.streamlit/secrets.toml`` has an ``[auth]`` section; ``st.login`` signs people in
  and the accounts file says which e-mails may enter and with which role.
- ``local``: the accounts file (``ctae users add``) has accounts; a name and password sign in,
  and a signed, expiring token (a cookie) keeps the browser signed in across reloads and tabs
  until it expires, the reviewer signs out, or the account is removed or changed. Repeated wrong
  passwords lock the account (or the client) for a while (``data_catalog.sign_ins``).
- ``open``: neither; only a visitor on this machine may use the dashboard, as its admin (the
  single-user, localhost case of ``ctae dashboard``; it refuses other hosts in this mode).
"""

from __future__ import annotations

import getpass
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from data_catalog.accounts import load_accounts, users_path, verify_password
from data_catalog.journal import open_journal
from data_catalog.session_tokens import SESSION_MAX_AGE_S, issue_token, token_holder
from data_catalog.sign_ins import (
    Lockout,
    last_sign_out,
    lockout,
    record_attempt,
    record_refused,
    record_sign_out,
)

logger = logging.getLogger(__name__)

USER = "signed_in_user"  # this browser session's sign-in token (data_catalog.session_tokens)
COOKIE = "ctae_sign_in"  # the same token, kept by the browser for reloads and other tabs
CATALOG = "catalog_path"  # dashboard.state.CATALOG (state imports data: kept apart)
# Sets or removes the sign-in cookie (JavaScript cannot set HttpOnly; SameSite=Strict keeps other
# sites from sending it, Secure when served over https).
_COOKIE_SCRIPT = """<script>
document.cookie = %s + "=" + %s + "; Path=/; Max-Age=%d; SameSite=Strict"
  + (location.protocol === "https:" ? "; Secure" : "");
</script>"""
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


def _client() -> str:
    """The visitor's address as the server saw it ("local" when Streamlit gives none)."""
    address = st.context.ip_address  # None on localhost; not a string under AppTest
    return address if isinstance(address, str) else "local"


def _locked_message(locked: Lockout, name: str) -> str:
    until = locked.until[11:16]
    whose = f"for {name}" if locked.by == "account" else "from this computer"
    return (f"Too many wrong passwords {whose}: sign-in is locked until {until} UTC. An admin "
            f"can set a new password at once with `ctae users add {name or 'NAME'}`.")


def _local_sign_in(catalog: Path | str) -> None:
    with st.form("sign_in"):
        st.markdown("**Sign in to ctae**")
        name = st.text_input("User name", key="sign_in_name").strip()
        password = st.text_input("Password", type="password", key="sign_in_password")
        submitted = st.form_submit_button("Sign in")
    if not submitted:
        return
    users, client = users_path(catalog), _client()
    known = load_accounts(users).get(name)
    written = known.created_at if known else ""
    with open_journal(catalog) as j:  # a lock: refused without trying the password
        locked = lockout(j, name, client, not_before=written)
        if locked is not None:
            record_refused(j, name, client)
    if locked is None:
        account = verify_password(users, name, password)
        with open_journal(catalog) as j:
            locked = record_attempt(j, name, client, ok=account is not None, not_before=written)
        if account is not None:
            st.session_state[USER] = issue_token(users, account)
            st.rerun()
        logger.warning("sign-in refused for %r from %s", name, client)
        st.error("Wrong user name or password.")
    if locked is not None:
        logger.warning("sign-in locked for %r from %s until %s", name, client, locked.until)
        st.error(_locked_message(locked, name))


def _token_identity(catalog: Path | str, token: str) -> Identity | None:
    """The identity a sign-in token still vouches for (not forged, expired, changed, signed out)."""
    holder = token_holder(users_path(catalog), token)
    if holder is None:
        return None
    with open_journal(catalog, write=False) as j:
        signed_out = last_sign_out(j, holder.account.name)
    if signed_out is not None and signed_out >= holder.issued_at:
        return None
    return Identity(holder.account.name, holder.account.role)


def _keep_cookie(token: str | None) -> None:
    """Make the browser's sign-in cookie hold ``token`` (None: remove it), for reloads and tabs."""
    if (token or None) == (st.context.cookies.get(COOKIE) or None):
        return
    st.html(_COOKIE_SCRIPT % (json.dumps(COOKIE), json.dumps(token or ""),
                              SESSION_MAX_AGE_S if token else 0),
            unsafe_allow_javascript=True)


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
    token = st.session_state.get(USER) or st.context.cookies.get(COOKIE)
    who = _token_identity(catalog, token) if token else None
    if who is None:
        st.session_state.pop(USER, None)
        _keep_cookie(None)
        _local_sign_in(catalog)
        return None
    st.session_state[USER] = token
    _keep_cookie(token)
    return who


def still_signed_in(catalog: Path | str) -> bool:
    """True while this browser session's local sign-in holds; checked before each label, as a
    fragment's rerun skips the page's sign-in (OIDC and the localhost mode: always True)."""
    if mode(catalog) != "local":
        return True
    token = st.session_state.get(USER)
    return bool(token) and _token_identity(catalog, token) is not None


def sign_out() -> None:
    """End this sign-in: every token issued to the reviewer so far stops working (other tabs
    and reloads too); OIDC: ``st.logout``."""
    token = st.session_state.pop(USER, None)
    holder = token_holder(users_path(st.session_state[CATALOG]), token) if token else None
    if holder is not None:
        with open_journal(st.session_state[CATALOG]) as j:
            record_sign_out(j, holder.account.name, _client())
    if oidc_configured() and st.user.is_logged_in:
        st.logout()
