"""Sign-in in Chromium: a reload and a second tab keep the identity; a forged or expired cookie is
refused; sign-out ends the token everywhere (a real `ctae dashboard` and browser contexts)."""

from __future__ import annotations

import base64
import json
import time

import pytest
from itsdangerous import TimestampSigner

from dashboard.auth import COOKIE
from data_catalog.accounts import add_account, users_path
from data_catalog.session_tokens import SESSION_MAX_AGE_S, serializer
from tests.dashboard import team_session as ts
from tests.dashboard.conftest import build

pytestmark = [pytest.mark.browser, pytest.mark.slow]
SIGN_IN_FORM = "Sign in to ctae"


class _LongAgo(TimestampSigner):
    """Signs as if an hour past the token's lifetime had gone by since."""

    def get_timestamp(self) -> int:
        return int(time.time()) - SESSION_MAX_AGE_S - 3600


@pytest.fixture
def server(settings):
    if not ts.CHROMIUM.exists():
        pytest.skip(f"{ts.CHROMIUM} not found: apt-get install chromium to run browser tests")
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    build(settings, n_scans=12)
    add_account(users_path(settings.catalog_path), "bea", "reviewer", "pw-bea-123")
    port = ts.free_port()
    proc = ts.start_dashboard(settings.catalog_path, port)
    yield settings, f"http://127.0.0.1:{port}"
    ts.stop(proc)


def _signed_in_as(page, name: str) -> None:
    page.get_by_text(f"Signed in as {name}").wait_for(timeout=60000)
    assert page.get_by_text(SIGN_IN_FORM).count() == 0


def _with_cookie(browser, url: str, value: str):
    context = browser.new_context()
    context.add_cookies([{"name": COOKIE, "value": value, "url": url}])
    page = context.new_page()
    page.goto(url, wait_until="domcontentloaded")
    return page


def _cookie(context) -> str | None:
    return next((c["value"] for c in context.cookies() if c["name"] == COOKIE), None)


def test_reload_and_second_tab_stay_signed_in_until_sign_out(server):
    from playwright.sync_api import sync_playwright

    settings, url = server
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(ts.CHROMIUM), args=ts.ARGS)
        page = ts.sign_in(browser, url, "bea", "pw-bea-123")
        _signed_in_as(page, "bea")
        page.wait_for_function(f"() => document.cookie.includes('{COOKIE}=')", timeout=30000)
        token = _cookie(page.context)
        page.reload(wait_until="domcontentloaded")
        _signed_in_as(page, "bea")
        tab = page.context.new_page()
        tab.goto(url, wait_until="domcontentloaded")
        _signed_in_as(tab, "bea")

        body, stamp, signature = token.split(".")
        forged = _with_cookie(browser, url, f"{body}.{stamp}.{signature[::-1]}")
        forged.get_by_text(SIGN_IN_FORM).wait_for(timeout=60000)
        payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        old = serializer(users_path(settings.catalog_path), _LongAgo).dumps(payload)
        expired = _with_cookie(browser, url, old)
        expired.get_by_text(SIGN_IN_FORM).wait_for(timeout=60000)

        page.get_by_role("button", name="Sign out").click()
        page.get_by_text(SIGN_IN_FORM).wait_for(timeout=60000)
        page.wait_for_function(f"() => !document.cookie.includes('{COOKIE}=')", timeout=30000)
        page.reload(wait_until="domcontentloaded")
        page.get_by_text(SIGN_IN_FORM).wait_for(timeout=60000)
        kept = _with_cookie(browser, url, token)  # a copy of the token from before the sign-out
        kept.get_by_text(SIGN_IN_FORM).wait_for(timeout=60000)
        assert kept.get_by_text("Signed in as").count() == 0
        browser.close()
