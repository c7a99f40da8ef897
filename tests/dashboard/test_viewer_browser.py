"""The interactive viewer in a real headless Chromium: a DICOM series shown as acquired,
scrolled with the wheel, windowed by dragging, in every layout (screenshots of each view); a
scan without reachable sources shown from the store with its overlays; and the server-rendered
fallback in a browser without WebGL."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from data_catalog import connect
from jobs.ingest import run_ingest
from tests.dashboard.conftest import build
from tests.dashboard.viewer_browser import (
    CHROMIUM,
    NO_WEBGL_ARGS,
    ROOT,
    WEBGL_ARGS,
    chest_series,
    open_scan,
    scroll,
    shown_voxel,
    start_dashboard,
    viewer_frame,
)

SHOTS = ROOT / os.environ.get("CTAE_SCREENSHOTS", "tests/out/screenshots")
pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def served(settings, tmp_path):
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found: apt-get install chromium to run the browser test")
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    build(settings, n_scans=20)
    run_ingest([chest_series(tmp_path / "src" / "chest", (40, 128, 128))], settings,
               workers=1, progress=False)
    with connect(settings.catalog_path, read_only=True) as con:
        (native_id,) = con.execute("SELECT scan_id FROM scans WHERE source_path = '.' "
                                   "OR source_path LIKE '%chest%'").fetchone()
    proc, url = start_dashboard(settings.catalog_path, _free_port())
    yield url, native_id
    proc.terminate()
    proc.wait(timeout=10)


def _shot(page, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"viewer_{name}.png"
    page.screenshot(path=path)
    return path


def test_viewer_scrolls_windows_and_falls_back(served):
    from playwright.sync_api import sync_playwright

    url, native_id = served
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=WEBGL_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        open_scan(page, url, native_id)
        frame = viewer_frame(page)
        caption = page.get_by_text("As acquired:").inner_text()
        assert "128×128×40 voxels of 0.70×0.70×1.00 mm" in caption
        assert frame.evaluate("() => Array.from(window.ctaeViewer.nv.volumes[0].hdr.dims.slice(1, 4))") == [128, 128, 40]
        before = shown_voxel(frame)
        rate = scroll(frame, 1.0)  # the rate is benchmarks/bench_viewer.py's; here: it scrolls
        assert rate["slices"] >= 3 and shown_voxel(frame)[2] != before[2]
        # window / level by dragging with the left button
        frame.select_option("#drag", "9")
        cal = "() => [window.ctaeViewer.nv.volumes[0].cal_min, window.ctaeViewer.nv.volumes[0].cal_max]"
        window_before = frame.evaluate(cal)
        box = frame.locator("#gl").bounding_box()
        page.mouse.move(box["x"] + box["width"] / 6, box["y"] + box["height"] / 2)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] / 6 + 80, box["y"] + box["height"] / 2 + 40, steps=8)
        page.mouse.up()
        assert frame.evaluate(cal) != window_before
        for layout, name in (("3", "three_planes"), ("0", "axial"), ("1", "coronal"), ("2", "sagittal")):
            frame.select_option("#layout", layout)
            page.wait_for_timeout(300)
            assert _shot(page, name).stat().st_size > 10_000
        # a scan whose sources are not reachable: the stored volume, with both overlays
        open_scan(page, url, "syn0000003")
        frame = viewer_frame(page)
        assert page.get_by_text("native resolution unavailable").count() == 1
        assert frame.evaluate("() => window.ctaeViewer.nv.volumes.length") == 3
        _shot(page, "stored_with_overlays")
        browser.close()

        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=NO_WEBGL_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.goto(f"{url}/viewer?scan=syn0000003", wait_until="commit")
        page.get_by_text("offers no WebGL2").first.wait_for(timeout=60000)
        page.wait_for_selector('[data-testid="stImage"] img', timeout=60000)
        assert page.locator('[data-testid="stImage"] img').count() == 9
        assert page.locator('[data-testid="stException"]').count() == 0
        _shot(page, "no_webgl_fallback")
        browser.close()
