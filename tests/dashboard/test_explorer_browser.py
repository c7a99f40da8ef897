"""The explorer's density layer in a real headless Chromium: a box dragged over it selects every
scan inside, drawn as a point or not (ECharts reports the box; the page maps it to scans)."""

from __future__ import annotations

import json

import pytest

from dashboard import charts
from data_catalog import connect
from tests.dashboard.conftest import build
from tests.dashboard.test_browser import ARGS, CHROMIUM, ECHARTS_DRAWN, server  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.slow]

N_SCANS = charts.DENSITY_FROM + 1000
_DRAWN = f"""() => !document.querySelector('[data-testid="stStatusWidget"]')
    && document.querySelectorAll('{ECHARTS_DRAWN}').length >= 3"""


@pytest.fixture
def catalog(settings):
    """More scans than the explorer draws one marker each for."""
    build(settings, n_scans=N_SCANS, n_volume_files=1)
    return settings


def _sent_box(frames: list) -> list[list[float]]:
    """The last box the browser sent the server (the chart's selection state, JSON inside
    Streamlit's binary websocket messages)."""
    decoder, box = json.JSONDecoder(), None
    for frame in frames:
        text = frame.decode("utf-8", "replace") if isinstance(frame, bytes) else frame
        start = text.find('{"selection"')
        if start >= 0:
            state, _ = decoder.raw_decode(text[start:])
            box = next((a["coord_range"] for a in state["selection"]["areas"]
                        if a["brush_type"] == "rect"), box)
    assert box is not None, "the browser sent no box"
    return box


def test_a_box_over_the_density_selects_every_scan_inside(server, catalog):  # noqa: F811
    from playwright.sync_api import sync_playwright

    frames: list = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.on("websocket", lambda ws: ws.on("framesent", lambda frame: frames.append(frame)))
        page.goto(f"{server}/explorer", wait_until="domcontentloaded")
        page.wait_for_function(_DRAWN, timeout=90000)
        chart = page.locator('[data-testid="stEChartsChart"]').first
        area = chart.bounding_box()
        page.mouse.click(area["x"] + 25, area["y"] + 22)  # the toolbox's box tool, top left
        x0, y0 = area["x"] + area["width"] * 0.28, area["y"] + area["height"] * 0.55
        page.mouse.move(x0, y0)  # over the dense lower left of the plot
        page.mouse.down()
        page.mouse.move(x0 + area["width"] * 0.27, y0 + area["height"] * 0.22, steps=8)
        page.mouse.up()
        page.get_by_text("scans selected").wait_for(timeout=60000)
        message = page.locator('[data-testid="stAlertContentSuccess"]').first.inner_text()
        browser.close()

    (x_low, x_high), (y_low, y_high) = (sorted(r) for r in _sent_box(frames))
    with connect(catalog.catalog_path, read_only=True) as con:
        (inside,) = con.execute(
            "SELECT count(*) FROM scores sc JOIN scans s USING (scan_id) "
            "WHERE s.pixel_count BETWEEN ? AND ? AND sc.mse_m BETWEEN ? AND ?",
            [x_low, x_high, y_low, y_high],
        ).fetchone()
    assert inside > 100  # the box covers the dense bottom-left, not only the drawn points
    assert message.startswith(f"{inside} scans selected")
