"""The explorer's density layer in a real headless Chromium: a drawn point shows its tooltip and
a click selects it; a box dragged over the density selects every scan inside, drawn as a point
or not (ECharts reports the box; the page maps it to scans)."""

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


_TOOLTIP = """() => [...document.querySelectorAll('[data-testid="stEChartsChart"] div')]
    .filter(d => d.style.zIndex && d.innerText.includes(' · ')).map(d => d.innerText).join('')"""


def _point_under_mouse(page, chart) -> tuple[float, float, str]:
    """Hover over a flagged point (the red markers on the chart's canvas) until its tooltip
    shows; its place on the page and its scan id."""
    import io

    import numpy as np
    from PIL import Image

    area = chart.bounding_box()
    rgb = np.asarray(Image.open(io.BytesIO(chart.screenshot())).convert("RGB")).astype(int)
    red = (rgb[..., 0] > 170) & (rgb[..., 1] < 110) & (rgb[..., 2] < 110)
    inner = red[2:-2, 2:-2] & red[:-4, 2:-2] & red[4:, 2:-2] & red[2:-2, :-4] & red[2:-2, 4:]
    rows, cols = np.nonzero(inner)  # the middles of red markers
    scale = rgb.shape[1] / area["width"]
    for k in np.linspace(0, len(rows) - 1, num=min(len(rows), 8)).astype(int):
        x, y = area["x"] + (cols[k] + 2) / scale, area["y"] + (rows[k] + 2) / scale
        page.mouse.move(x, y)
        page.wait_for_timeout(800)
        tooltip = page.evaluate(_TOOLTIP)
        if tooltip:
            return x, y, tooltip.split(" · ")[0].strip()
    raise AssertionError(f"no tooltip over {len(rows)} red marker pixels")


def test_a_click_and_a_box_over_the_density_select_scans(server, catalog):  # noqa: F811
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
        x, y, clicked = _point_under_mouse(page, chart)  # each drawn point has its hover facts
        page.mouse.click(x, y)
        page.get_by_text(f"1 scans selected: {clicked}").wait_for(timeout=60000)

        page.mouse.click(area["x"] + 25, area["y"] + 22)  # the toolbox's box tool, top left
        x0, y0 = area["x"] + area["width"] * 0.28, area["y"] + area["height"] * 0.55
        page.mouse.move(x0, y0)  # over the dense lower left of the plot
        page.mouse.down()
        page.mouse.move(x0 + area["width"] * 0.27, y0 + area["height"] * 0.22, steps=8)
        page.mouse.up()
        page.wait_for_function(  # the box's selection, not the click's any more
            """() => [...document.querySelectorAll('[data-testid="stAlertContentSuccess"]')]
                .some(e => / scans selected/.test(e.innerText) && !/^1 scans/.test(e.innerText))""",
            timeout=60000,
        )
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
    # the clicked scan (above T, outside the box) and every scan inside the box
    assert message.startswith(f"{inside + 1} scans selected: {clicked}, ")
