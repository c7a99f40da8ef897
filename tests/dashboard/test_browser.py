"""The dashboard in a real headless Chromium (Playwright, Debian's /usr/bin/chromium).

Starts `ctae dashboard` on a synthetic catalog (no accounts: the localhost admin), opens every
page, downloads an export, checks that no page shows an exception (labelling in sessions:
test_team_browser.py), and saves small screenshots to
tests/out/screenshots/ (git-ignored); `CTAE_SCREENSHOTS=docs/screenshots` refreshes the README's.
"""

from __future__ import annotations

import getpass
import io
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from data_catalog import connect
from tests.dashboard.conftest import build

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / os.environ.get("CTAE_SCREENSHOTS", "tests/out/screenshots")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PAGES = {
    "Overview": "overview",
    "Outlier explorer": "explorer",
    "Feature space": "feature_space",
    "Scan viewer": "viewer",
    "My reviews": "my_reviews",
    "Review sessions": "sessions",
    "Team review": "team",
    "Audit log": "audit",
    "Export": "export",
}

ECHARTS_DRAWN = '[data-testid="stEChartsChart"][aria-busy="false"] canvas'
"""An ECharts chart (the Overview's and the explorer's) that has drawn."""

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


N_SCANS = 300


@pytest.fixture
def catalog(settings):
    """A few hundred scans, so that the screenshots show a populated dashboard."""
    build(settings, n_scans=N_SCANS)
    return settings


@pytest.fixture
def server(catalog):
    if not CHROMIUM.exists():
        pytest.skip(
            f"{CHROMIUM} not found: install Debian's chromium (apt-get install chromium) "
            "to run the browser test"
        )
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jobs",
            "dashboard",
            "--catalog",
            str(catalog.catalog_path),
            "--port",
            str(port),
            "--no-browser",
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=1).read() == b"ok":
                break
        except OSError:
            time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("`ctae dashboard` did not answer /_stcore/health within 30 s")
    yield url
    proc.terminate()  # `ctae dashboard` execs Streamlit, so this stops the server itself
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def _settle(page) -> None:
    page.wait_for_timeout(300)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"
        " && !document.querySelector('[data-testid=\"stSkeleton\"]')",
        timeout=30000,
    )
    page.wait_for_timeout(200)


def _shot(page, name: str) -> None:
    from PIL import Image

    image = Image.open(io.BytesIO(page.screenshot()))
    image = image.convert("RGB").resize((image.width * 3 // 4, image.height * 3 // 4))
    SHOTS.mkdir(parents=True, exist_ok=True)
    image.save(SHOTS / f"{name}.png", optimize=True)
    assert (SHOTS / f"{name}.png").stat().st_size <= 300_000


def _open(page, title: str) -> None:
    page.locator('[data-testid="stSidebarNav"] a', has_text=title).first.click()
    _settle(page)
    assert page.locator('[data-testid="stException"]').count() == 0, f"exception on {title}"


def test_every_page_and_export_in_chromium(server, catalog, tmp_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(server, wait_until="domcontentloaded")
        page.wait_for_selector(ECHARTS_DRAWN, timeout=60000)
        _settle(page)
        for title, name in PAGES.items():
            _open(page, title)
            if title == "Outlier explorer":
                page.wait_for_selector(ECHARTS_DRAWN, timeout=30000)
            if title == "Feature space":
                page.wait_for_selector(".js-plotly-plot .main-svg", timeout=30000)
            if title == "Scan viewer":
                # the interactive viewer has its own test (test_viewer_browser.py); here the
                # server-rendered planes, as when the browser viewer fails
                page.wait_for_selector('iframe[title*="ctae_scan_viewer"]', timeout=30000)
                page.get_by_text("server-rendered", exact=True).click()
                _settle(page)
                page.wait_for_selector('[data-testid="stImage"] img', timeout=30000)
            if title == "Export":
                page.get_by_role("button", name="Prepare the export file").click()
                button = page.get_by_test_id("stDownloadButton").get_by_role("button")
                with page.expect_download(timeout=30000) as download:
                    button.click()
                download.value.save_as(tmp_path / "export.csv")
            _shot(page, name)
        assert page.locator('[data-testid="stException"]').count() == 0
        browser.close()

    lines = (tmp_path / "export.csv").read_text().strip().splitlines()
    assert lines[0].startswith('"scan_id",') and len(lines) == N_SCANS + 1
    with connect(catalog.catalog_path, read_only=True) as con:
        exports = con.execute("SELECT who, row_count FROM exports").fetchall()
    assert exports == [(getpass.getuser(), N_SCANS)]  # the signed-in identity, never typed
