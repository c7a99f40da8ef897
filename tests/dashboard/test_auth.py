"""Sign-in tokens and the lock after repeated wrong passwords (real accounts file and journal)."""

from __future__ import annotations

import base64
import json
import os
import stat
import time
from datetime import datetime, timedelta

import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from streamlit.testing.v1 import AppTest

from dashboard.auth import USER
from data_catalog.accounts import add_account, load_accounts, remove_account, users_path
from data_catalog.journal import open_journal
from data_catalog.session_tokens import (
    SESSION_MAX_AGE_S,
    issue_token,
    secret_path,
    serializer,
    token_holder,
)
from data_catalog.sessions import audit_table, create_session, latest_reads
from data_catalog.sign_ins import SignInLimits, lockout, record_attempt
from tests.dashboard.conftest import APP, build


@pytest.fixture
def users(settings):
    """A synthetic catalog; accounts ada (admin) and bea (reviewer) beside it."""
    build(settings, n_scans=12)
    path = users_path(settings.catalog_path)
    add_account(path, "ada", "admin", "pw-ada-123")
    add_account(path, "bea", "reviewer", "pw-bea-123")
    return settings, path


def _signed_ago(age_s: float) -> type[TimestampSigner]:
    """A signer whose tokens look ``age_s`` old when made."""

    class Earlier(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time() - age_s)

    return Earlier


def _token(path, name: str) -> str:
    return issue_token(path, load_accounts(path)[name])


def test_token_signs_in_until_forged_expired_changed_or_removed(users):
    _, path = users
    token = _token(path, "bea")
    assert token_holder(path, token).account.name == "bea"
    assert stat.S_IMODE(os.stat(secret_path(path)).st_mode) == 0o600
    body, stamp, signature = token.split(".")
    assert token_holder(path, f"{body}.{stamp}.{signature[::-1]}") is None  # forged signature
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    as_ada = base64.urlsafe_b64encode(json.dumps({**payload, "u": "ada"}).encode()).decode()
    assert token_holder(path, f"{as_ada.rstrip('=')}.{stamp}.{signature}") is None  # other name
    other_secret = URLSafeTimedSerializer(b"a guessed secret", salt="ctae-sign-in")
    assert token_holder(path, other_secret.dumps(payload)) is None  # signed without the secret
    assert token_holder(path, token, max_age_s=-1) is None  # older than allowed
    for age_s, accepted in ((3600, True), (SESSION_MAX_AGE_S + 3600, False)):
        earlier = serializer(path, _signed_ago(age_s)).dumps(payload)  # the server's secret
        assert (token_holder(path, earlier) is not None) is accepted
    add_account(path, "bea", "admin", "pw-bea-123")  # role changed: old tokens stop
    assert token_holder(path, token) is None
    fresh = _token(path, "bea")
    remove_account(path, "bea")
    assert token_holder(path, fresh) is None


def test_secret_readable_by_others_is_refused(users):
    _, path = users
    _token(path, "bea")
    os.chmod(secret_path(path), 0o644)
    with pytest.raises(PermissionError, match="chmod 600"):
        _token(path, "bea")


def test_five_wrong_passwords_lock_the_account_for_a_while_and_are_audited(users):
    settings, _ = users
    limits = SignInLimits()
    with open_journal(settings.catalog_path) as j:
        started = [record_attempt(j, "bea", "10.0.0.7", ok=False) for _ in range(5)]
        assert started[:4] == [None] * 4 and started[4].by == "account"
        until = started[4].until
        assert lockout(j, "bea", "10.0.0.9", limits).until == until  # from any client
        assert lockout(j, "ada", "10.0.0.9", limits) is None  # other accounts are not locked
        after = (datetime.fromisoformat(until) + timedelta(seconds=1)).isoformat()
        assert lockout(j, "bea", "10.0.0.9", limits, now=after) is None  # it ends
        before = (datetime.fromisoformat(until) - timedelta(seconds=60)).isoformat()
        assert lockout(j, "bea", "10.0.0.9", limits, now=before) is not None
        assert lockout(j, "bea", "10.0.0.9", limits, not_before=until) is None  # new password
        log = audit_table(j)
    assert list(log["action"]).count("sign_in_failed") == 5
    assert log.loc[log["action"] == "sign_in_locked", "target"].tolist() == ["bea"]


def test_twenty_wrong_passwords_from_one_client_lock_that_client(users):
    settings, _ = users
    with open_journal(settings.catalog_path) as j:
        for i in range(19):
            assert record_attempt(j, f"guess{i}", "10.0.0.8", ok=False) is None
        assert record_attempt(j, "guess19", "10.0.0.8", ok=False).by == "client"
        assert lockout(j, "ada", "10.0.0.8").by == "client"
        assert lockout(j, "ada", "10.0.0.5") is None


def _sign_in(at: AppTest, name: str, password: str) -> AppTest:
    at.text_input(key="sign_in_name").input(name)
    at.text_input(key="sign_in_password").input(password)
    return at.button[0].click().run()


def test_sign_in_form_locks_after_five_wrong_passwords(users, monkeypatch):
    settings, _ = users
    monkeypatch.setenv("CTAE_CATALOG", str(settings.catalog_path))
    at = AppTest.from_file(APP, default_timeout=30).run()
    for _ in range(4):
        _sign_in(at, "bea", "wrong-password")
        assert [e.value for e in at.error] == ["Wrong user name or password."]
    _sign_in(at, "bea", "wrong-password")
    assert "Too many wrong passwords for bea" in at.error[1].value
    _sign_in(at, "bea", "pw-bea-123")  # the right password, but locked: not tried
    assert USER not in at.session_state and not at.title
    assert "sign-in is locked until" in at.error[0].value
    with open_journal(settings.catalog_path, write=False) as j:
        outcomes = [r[0] for r in j.execute("SELECT outcome FROM sign_in_events ORDER BY seq")]
    assert outcomes == ["wrong"] * 5 + ["locked"]


def test_sign_out_ends_every_token_issued_before(users, monkeypatch):
    settings, path = users
    monkeypatch.setenv("CTAE_CATALOG", str(settings.catalog_path))
    at = AppTest.from_file(APP, default_timeout=30)
    at.session_state[USER] = first = _token(path, "bea")
    at.run()
    assert "Signed in as **bea**" in at.sidebar.markdown[0].value
    at.sidebar.button(key="sign_out").click().run()
    assert USER not in at.session_state
    again = AppTest.from_file(APP, default_timeout=30)
    again.session_state[USER] = first  # another tab holding the same token
    again.run()
    assert not again.title and again.text_input(key="sign_in_name")
    assert token_holder(path, first) is not None  # refused for the sign-out, not its signature
    with open_journal(settings.catalog_path, write=False) as j:
        assert audit_table(j)["action"].iloc[0] == "sign_out"


@pytest.mark.parametrize("pane", ["browser", "server"])
def test_a_removed_reviewer_cannot_label_from_an_open_page(users, monkeypatch, pane):
    settings, path = users
    with open_journal(settings.catalog_path) as j:
        sid = create_session(j, name="one", created_by="ada", run_id="synthetic", source="t",
                             reads_per_scan=1, show_others=False, show_model=False,
                             queues={"bea": ["syn0000001", "syn0000002"]})
    monkeypatch.setenv("CTAE_CATALOG", str(settings.catalog_path))
    at = AppTest.from_file(APP, default_timeout=30)
    at.session_state[USER] = _token(path, "bea")
    at.run()
    assert at.title[0].value == "My reviews"
    if pane == "server":
        at.toggle(key="mr_browser").set_value(False).run()
    remove_account(path, "bea")
    if pane == "browser":  # the label the browser pane sends as its value
        at.session_state[f"mr_pane_{sid}"] = {"pending": [
            {"id": "18c2f0a1b2-0001", "scan": "syn0000001", "verdict": "outlier", "causes": []}],
            "at": "syn0000001"}
        at.run()
    else:
        at.button(key="kb_outlier").click().run()
    assert not at.exception and not at.title and at.text_input(key="sign_in_name")
    with open_journal(settings.catalog_path, write=False) as j:
        assert latest_reads(j, sid).empty
