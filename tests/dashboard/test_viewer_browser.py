"""The interactive viewer in a real headless Chromium without a GPU: a DICOM series shown as
acquired, scrolled with the wheel, windowed by dragging; a scan without reachable sources shown
from the store with its overlays and its hottest region outlined, in every layout (screenshots of
each view); the server-rendered view; and the fall back to it when the browser viewer fails."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from data_catalog import CatalogSettings, connect
from jobs.ingest import run_ingest
from tests.dashboard.conftest import build
from tests.dashboard.viewer_browser import (
    BROWSER_ARGS,
    CHROMIUM,
    ROOT,
    chest_series,
    open_scan,
    scroll,
    shown_voxel,
    start_dashboard,
    viewer_frame,
    wheel_step,
)

SHOTS = ROOT / os.environ.get("CTAE_SCREENSHOTS", "tests/out/screenshots")
pytestmark = [pytest.mark.browser, pytest.mark.slow]
OUTLINE_PIXELS = """() => {  // canvas pixels in the hottest region's outline colour
  const c = document.getElementById('view');
  const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let n = 0;
  for (let i = 0; i < px.length; i += 4) if (px[i] < 20 && px[i + 1] > 200 && px[i + 2] > 235) n++;
  return n;
}"""

AXIAL_SPREAD = """() => {  // how many distinct grey levels the axial tile shows
  const t = window.ctaeViewer.tile('axial');
  const c = document.getElementById('view');
  const r = window.devicePixelRatio || 1;
  const px = c.getContext('2d').getImageData(t.x * r, t.y * r, t.w * r, t.h * r).data;
  const seen = new Set();
  for (let i = 0; i < px.length; i += 4) seen.add(px[i] * 65536 + px[i + 1] * 256 + px[i + 2]);
  return seen.size;
}"""

CANVAS_SUM = """() => {  // a checksum of what the canvas shows
  const c = document.getElementById('view');
  return c.getContext('2d').getImageData(0, 0, c.width, c.height).data.reduce((a, b) => a + b, 0);
}"""


def drawn(frame, condition: str, timeout_ms: int = 10_000) -> None:
    """Wait until the viewer's canvas meets ``condition`` (a JS expression): it draws a change
    on the next animation frame, which a busy machine may hold back for a while."""
    frame.wait_for_function(f"() => {condition}", timeout=timeout_ms)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found: apt-get install chromium to run the browser test")
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    tmp_path = tmp_path_factory.mktemp("viewer")
    settings = CatalogSettings.resolve(tmp_path / "catalog.duckdb", tmp_path / "store", env={})
    with connect(settings.catalog_path):
        pass
    build(settings, n_scans=20)
    run_ingest([chest_series(tmp_path / "src" / "chest", (40, 128, 128)),
                chest_series(tmp_path / "src" / "long", (71, 256, 256), seed=1)], settings,
               workers=1, progress=False)
    with connect(settings.catalog_path, read_only=True) as con:
        ids = dict(con.execute("SELECT source_root, scan_id FROM scans "
                               "WHERE source_root LIKE '%src%'").fetchall())
    proc, url = start_dashboard(settings.catalog_path, _free_port())
    yield url, ids[str(tmp_path / "src" / "chest")], ids[str(tmp_path / "src" / "long")]
    proc.terminate()
    proc.wait(timeout=10)


def _shot(target, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"viewer_{name}.png"
    target.screenshot(path=path)
    return path


def test_viewer_scrolls_windows_outlines_and_falls_back(served):
    from playwright.sync_api import sync_playwright

    url, native_id, _ = served
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        open_scan(page, url, native_id)
        frame = viewer_frame(page)
        iframe = page.locator('iframe[title*="ctae_scan_viewer"]')
        caption = page.get_by_text("As acquired:").inner_text()
        assert "128×128×40 voxels of 0.70×0.70×1.00 mm" in caption
        assert frame.evaluate("() => window.ctaeViewer.shape()") == [40, 128, 128]
        # the status line reads the voxel under the crosshair from the series itself
        assert frame.locator("#status").inner_text().startswith("voxel (64, 64, 20)")
        rate = scroll(frame, 1.0)  # the rate is benchmarks/bench_viewer.py's; here: it scrolls
        assert rate["slices"] >= 3 and rate["draws"] >= rate["slices"]
        # one notch moves the crosshair one slice (away from the end it may have stopped at:
        # the scroll above bounces between the ends, so where it stops is chance)
        z = shown_voxel(frame)[2]
        up = z < 39
        assert wheel_step(frame, up) == z + (1 if up else -1)
        # a click moves the crosshair on the other planes: on the axial tile, x and y change
        tile = frame.evaluate("() => window.ctaeViewer.tile('axial')")
        box = frame.locator("#view").bounding_box()
        page.mouse.click(box["x"] + tile["x"] + tile["w"] * 0.25, box["y"] + tile["y"] + tile["h"] * 0.75)
        x, y, _ = shown_voxel(frame)
        assert abs(x - 32) <= 1 and abs(y - 96) <= 1
        # window / level by dragging with the left button in window mode
        frame.select_option("#drag", "window")
        window_before = frame.evaluate("() => window.ctaeViewer.window()")
        page.mouse.move(box["x"] + box["width"] / 6, box["y"] + box["height"] / 2)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] / 6 + 80, box["y"] + box["height"] / 2 + 40, steps=8)
        page.mouse.up()
        width, level = frame.evaluate("() => window.ctaeViewer.window()")
        assert width > window_before[0] and level > window_before[1]
        assert frame.locator("#preset").input_value() == "custom"
        frame.select_option("#preset", "lung")  # the presets live in the viewer: no rerun
        assert frame.evaluate("() => window.ctaeViewer.window()") == [1500, -600]
        frame.click("#reset")
        _shot(iframe, "as_acquired")

        # a scan whose sources are not reachable: the stored volume, overlays and the outline
        open_scan(page, url, "syn0000003")
        frame = viewer_frame(page)
        assert page.get_by_text("native resolution unavailable").count() == 1
        assert page.get_by_text("opened at the hottest |error| region (outlined)").count() == 1
        assert frame.evaluate("() => window.ctaeViewer.overlays()") == ["error", "reconstruction", "region"]
        assert frame.locator("#status").inner_text().count("in the hottest region") == 1
        assert frame.evaluate(OUTLINE_PIXELS) > 20
        # the next hottest regions, one click each, and back to the first
        regions = frame.evaluate("() => window.ctaeViewer.regions()")
        assert len(regions) == 3 and regions[0] == shown_voxel(frame)
        assert frame.locator("#next_region").inner_text() == "region 1 of 3 ▸"
        for k in (1, 2, 0):
            frame.click("#next_region")
            assert shown_voxel(frame) == regions[k]
            assert frame.locator("#next_region").inner_text() == f"region {k + 1} of 3 ▸"
        frame.click("#next_region")
        drawn(frame, "document.getElementById('status').innerText.includes('in hottest region 2 of 3')")
        frame.click("#next_region")
        frame.click("#next_region")
        assert page.get_by_text("‘next region’ steps through the 3 hottest").count() == 1
        shown = frame.evaluate(CANVAS_SUM)
        frame.uncheck("#outline")  # each change is drawn on the next animation frame
        drawn(frame, f"({OUTLINE_PIXELS})() == 0")
        frame.check("#outline")
        frame.check("#recon")  # the reconstruction drawn in the scan's place
        drawn(frame, f"({OUTLINE_PIXELS})() > 20 && ({CANVAS_SUM})() != {shown}")
        frame.uncheck("#recon")
        for layout, name in (("3", "three_planes"), ("0", "axial"), ("1", "coronal"), ("2", "sagittal")):
            frame.select_option("#layout", layout)
            drawn(frame, f"({OUTLINE_PIXELS})() > 5")  # the region is cut on every plane
            assert _shot(iframe, name).stat().st_size > 10_000

        # the server-rendered view, opened at the hottest region and outlined as well
        page.get_by_text("server-rendered", exact=True).click()
        page.wait_for_selector('[data-testid="stImage"] img', timeout=60000)
        assert page.locator('[data-testid="stImage"] img').count() == 9
        assert page.locator('[data-testid="stException"]').count() == 0
        _shot(page, "server_rendered")

        # the browser viewer fails (its cached files vanished): the server renders instead
        from dashboard.scan_volumes import VIEWER_CACHE

        open_scan(page, url, native_id)
        folder = viewer_frame(page).evaluate("() => window.ctaeViewer.key").split(":")[1]
        for slab in (VIEWER_CACHE / folder).glob("slab-*.gz"):
            slab.unlink()
        page.close()
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.goto(f"{url}/viewer?scan={native_id}", wait_until="commit")
        page.get_by_text("The interactive viewer failed").first.wait_for(timeout=60000)
        page.wait_for_selector('[data-testid="stImage"] img', timeout=60000)
        assert page.locator('[data-testid="stImage"] img').count() == 3  # no run volumes: original only
        assert page.locator('[data-testid="stException"]').count() == 0
        browser.close()


def test_a_long_series_is_scrollable_from_its_previews_before_its_slabs_arrive(served):
    from playwright.sync_api import sync_playwright

    url, _, long_id = served  # 256×256×71: three slabs of 30 slices, and two previews
    held, held_preview = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        first_slab = []

        def hold(route):  # the crosshair's slab goes through; the others wait
            if first_slab:
                held.append(route)
            else:
                first_slab.append(route.request.url)
                route.continue_()

        page.route("**/slab-*.gz", hold)
        page.route("**/preview-2.gz", lambda route: held_preview.append(route))  # waits too
        page.goto(f"{url}/viewer?scan={long_id}", wait_until="commit")
        frame = viewer_frame(page)
        frame.wait_for_function("() => window.ctaeViewer.scrollable() && window.ctaeViewer.loadedSlices() == 30",
                                timeout=120000)
        assert first_slab[0].endswith("slab-0030.gz")  # the crosshair's slab (slice 35) first
        assert frame.evaluate("() => window.ctaeViewer.shown()") == "full"
        frame.locator("#view").click(position={"x": 5, "y": 5})  # focus; the hover plane: axial
        for _ in range(2):
            page.keyboard.press("PageDown")  # 20 slices down, out of the slab that arrived
        drawn(frame, "window.ctaeViewer.cursor()[2] == 15"
                     " && document.getElementById('status').innerText.startsWith('voxel (')"
                     " && document.getElementById('status').innerText.includes(', 15)')")
        assert frame.evaluate("() => window.ctaeViewer.shown()") == "preview"
        status = frame.locator("#status").inner_text()
        assert "preview (1/4 resolution)" in status and "HU ≈" in status
        coarse = frame.evaluate(AXIAL_SPREAD)
        assert coarse > 10  # the coarse preview's body and lungs, not black
        held_preview[0].continue_()  # the finer preview replaces the coarse one
        frame.wait_for_function("() => window.ctaeViewer.previewFactor() === 2", timeout=120000)
        drawn(frame, "document.getElementById('status').innerText.includes('preview (1/2 resolution)')")
        assert frame.evaluate(AXIAL_SPREAD) > coarse  # finer: more distinct grey levels
        for route in held:  # the other slabs arrive: full resolution replaces the preview
            route.continue_()
        frame.wait_for_function("() => window.ctaeViewer.ready", timeout=120000)
        drawn(frame, "document.getElementById('status').innerText.includes('full resolution')")
        assert frame.evaluate("() => window.ctaeViewer.shown()") == "full"
        browser.close()
