"""The explorer's density layer in a real headless Chromium: a box dragged over it selects every
scan inside, drawn as a point or not (Plotly reports the box; the page maps it to scans)."""

from __future__ import annotations

import pytest

from dashboard import charts
from data_catalog import connect
from tests.dashboard.conftest import build
from tests.dashboard.test_browser import ARGS, CHROMIUM, server  # noqa: F401  (fixture)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

N_SCANS = charts.DENSITY_FROM + 1000
_DRAWN = """() => {
    const plots = document.querySelectorAll('.js-plotly-plot');
    return !document.querySelector('[data-testid="stStatusWidget"]') && plots.length >= 3
        && [...plots].every(p => p._fullLayout && p.querySelector('.main-svg'));
}"""


@pytest.fixture
def catalog(settings):
    """More scans than the explorer draws one marker each for."""
    build(settings, n_scans=N_SCANS, n_volume_files=1)
    return settings


def test_a_box_over_the_density_selects_every_scan_inside(server, catalog):  # noqa: F811
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{server}/explorer", wait_until="domcontentloaded")
        page.wait_for_function(_DRAWN, timeout=90000)
        types = page.evaluate(
            "() => document.querySelector('.js-plotly-plot').data.map(t => t.type)"
        )
        assert types == ["heatmap", "scattergl"]

        plot = page.locator(".js-plotly-plot").first
        plot.hover()
        page.locator('.modebar-btn[data-attr="dragmode"][data-val="select"]').first.click()
        area = plot.locator(".nsewdrag").first.bounding_box()
        x0, y0 = area["x"] + area["width"] * 0.05, area["y"] + area["height"] * 0.45
        page.mouse.move(x0, y0)
        page.mouse.down()
        page.mouse.move(x0 + area["width"] * 0.4, y0 + area["height"] * 0.5, steps=8)
        page.mouse.up()
        page.get_by_text("scans selected").wait_for(timeout=60000)
        message = page.locator('[data-testid="stAlertContentSuccess"]').first.inner_text()
        box = page.evaluate(
            "() => document.querySelector('.js-plotly-plot').layout.selections[0]"
        )
        browser.close()

    xs, ys = sorted([box["x0"], box["x1"]]), sorted([box["y0"], box["y1"]])
    with connect(catalog.catalog_path, read_only=True) as con:
        (inside,) = con.execute(
            "SELECT count(*) FROM scores sc JOIN scans s USING (scan_id) "
            "WHERE s.pixel_count BETWEEN ? AND ? AND sc.mse_m BETWEEN ? AND ?",
            [*xs, *ys],
        ).fetchone()
    assert inside > 100  # the box covers the dense bottom-left, not only the drawn points
    assert message.startswith(f"{inside} scans selected")
