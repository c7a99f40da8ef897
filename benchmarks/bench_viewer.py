"""The interactive viewer on a 512×512×300 CT series, in headless Chromium without a GPU.

Figures (each against a baseline measured in the same run):
- open: from navigating to ``/viewer?scan=ID`` until the first slice is drawn and until the whole
  series has arrived (every plane scrollable), cold (the series read from its DICOM files) and
  warm (cached on the server; a fresh browser) — target ≤ 2 s; baseline: the server-rendered
  view's first images of the same scan; the browser's share is reported on its own;
- scan switch: in an open page, the review queue switched away and back to the series (a rerun,
  no page start; the browser fetches the series again) until its first slice / all of it;
- scrolling: axial slices per second under mouse-wheel events, one per animation frame, three
  planes shown — target ≥ 30; baseline: the server-rendered view, one slider step (a round
  trip) per slice;
- the native re-read of the series' DICOM files alone (what a cold open pays once).
Chromium runs with --disable-gpu --disable-gpu-vsync --disable-frame-rate-limit (no GPU;
animation frames as fast as a desktop browser's, not headless's ~6/s). The load average is
printed at the start and the end. Screenshots of each view go to benchmarks/out/viewer/.

Run: ``.venv/bin/python benchmarks/bench_viewer.py [--quick] [--port N]`` (--quick: 256×256×150).
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.rows import row  # noqa: E402
from dashboard import review_queue  # noqa: E402
from data_catalog import CatalogSettings, connect  # noqa: E402
from jobs.ingest import run_ingest  # noqa: E402
from jobs.synthetic_catalog import SyntheticSpec, build_synthetic_catalog  # noqa: E402
from tests.dashboard.viewer_browser import (  # noqa: E402
    BROWSER_ARGS,
    CHROMIUM,
    chest_series,
    open_scan,
    scroll,
    start_dashboard,
    viewer_frame,
    wait_drawn,
)

OUT = Path(os.environ.get("CTAE_BENCH_OUT", ROOT / "benchmarks" / "out" / "viewer"))


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def prepare(shape_zyx: tuple[int, int, int]) -> tuple[CatalogSettings, str, float]:
    """A catalog with a scored synthetic run plus the series ingested; (settings, scan, write s)."""
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    settings = CatalogSettings.resolve(OUT / "catalog.duckdb", OUT / "store", env={})
    with connect(settings.catalog_path):
        pass
    build_synthetic_catalog(settings, SyntheticSpec(n_scans=20))
    started = time.perf_counter()
    chest_series(OUT / "source" / "chest", shape_zyx)
    written = time.perf_counter() - started
    run_ingest([OUT / "source" / "chest"], settings, workers=1, progress=False)
    with connect(settings.catalog_path, read_only=True) as con:
        (scan_id,) = con.execute("SELECT scan_id FROM scans WHERE source_path = '.'").fetchone()
    return settings, scan_id, written


def _server_baseline(page, steps: int) -> tuple[float, float]:
    """(seconds to the first server-rendered images, slices/s by slider steps)."""
    started = time.perf_counter()
    page.get_by_text("server-rendered", exact=True).click()
    page.wait_for_selector('[data-testid="stImage"] img', timeout=300000)
    first = time.perf_counter() - started
    slider = page.locator('[data-testid="stSlider"] input[type="range"]').nth(2)  # axial slice
    started = time.perf_counter()
    for _ in range(steps):
        before = page.locator('[data-testid="stImage"] img').first.get_attribute("src")
        slider.focus(timeout=120000)
        page.keyboard.press("ArrowRight")
        page.wait_for_function(
            "src => document.querySelector('[data-testid=\"stImage\"] img').src !== src",
            arg=before, timeout=120000)
    return first, steps / (time.perf_counter() - started)


def _load() -> str:
    return "load average " + " ".join(f"{v:.2f}" for v in os.getloadavg())


def _open(browser, url: str, scan_id: str, what: str) -> tuple[float, float, float, float]:
    """(first slice s, fully loaded s, browser's share of each) in a fresh browser context."""
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    first, full = open_scan(page, url, scan_id, timeout_ms=900000)
    frame = viewer_frame(page)
    client_first, client_full = (frame.evaluate(f"() => window.ctaeViewer.{k}") / 1000
                                 for k in ("firstDrawMs", "loadMs"))
    print(f"open {what}: first slice {first:.2f} s, fully loaded {full:.2f} s "
          f"(in the browser: {client_first:.2f} / {client_full:.2f} s), {_load()}", flush=True)
    page.close()
    return first, full, client_first, client_full


def _switch_back(page, frame, scan_id: str) -> tuple[float, float]:
    """Seconds from picking the series again in the open page (the review queue switched to
    the flagged scans and back: a rerun, no page start) until its first slice is drawn / all."""
    page.get_by_text(review_queue.FLAGGED_FIRST, exact=True).click()
    frame.wait_for_function(
        "id => window.ctaeViewer.ready && !String(window.ctaeViewer.key).startsWith(id + ':')",
        arg=scan_id, timeout=900000)
    started = time.perf_counter()
    page.get_by_text(review_queue.SELECTION, exact=True).click()
    first, full = wait_drawn(frame, scan_id, started, 900000)
    print(f"scan switch: first slice {first:.2f} s, fully loaded {full:.2f} s, {_load()}", flush=True)
    return first, full


def main(quick: bool = False, port: int = 0) -> list[dict]:
    """Measure every figure; returns the rows for benchmarks/run."""
    from playwright.sync_api import sync_playwright

    from ctae_core.io.native_series import read_native_volume

    if not CHROMIUM.exists():
        raise RuntimeError(f"{CHROMIUM} is missing: apt-get install chromium")
    print(f"start: {_load()}", flush=True)
    shape = (150, 256, 256) if quick else (300, 512, 512)
    size = f"{shape[2]}×{shape[1]}×{shape[0]}"
    settings, scan_id, written = prepare(shape)
    proc, url = start_dashboard(settings.catalog_path, port or _port())
    rows = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
            cold = _open(browser, url, scan_id, "cold")
            warm = _open(browser, url, scan_id, "warm")
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            open_scan(page, url, scan_id, timeout_ms=900000)
            frame = viewer_frame(page)
            scroll(frame, 0.5)  # warm up the drawing code
            rate = scroll(frame, 3.0)
            slices_s = rate["slices"] / rate["seconds"]
            print(f"scrolling {slices_s:.1f} slices/s ({rate}), {_load()}", flush=True)
            switched = _switch_back(page, frame, scan_id)
            iframe = page.locator('iframe[title*="ctae_scan_viewer"]')
            for layout, name in (("3", "three_planes"), ("0", "axial"), ("1", "coronal"), ("2", "sagittal")):
                frame.select_option("#layout", layout)
                page.wait_for_timeout(300)
                iframe.screenshot(path=OUT / f"{name}.png")
            server_first, server_rate = _server_baseline(page, 3 if quick else 5)
            print(f"server-rendered: first {server_first:.1f} s, {server_rate:.2f} slices/s", flush=True)
            page.screenshot(path=OUT / "server_rendered.png")
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    started = time.perf_counter()
    read_native_volume(str(OUT / "source" / "chest"), ".")
    reread = time.perf_counter() - started
    print(f"native re-read of the DICOM files alone: {reread:.2f} s; end: {_load()}", flush=True)
    for (first, full, client_first, client_full), what in ((cold, "cold (DICOM read)"), (warm, "warm (cached on the server)")):
        rows.append(row("viewer", f"open {size} as acquired, {what}: first slice", first, "s", 2.0, server_first))
        rows.append(row("viewer", f"open {size} as acquired, {what}: fully scrollable", full, "s", 2.0, server_first))
        rows.append(row("viewer", "  of which in the browser (fetch + draw): first slice / all", client_first, "s", None, client_full))
    rows.append(row("viewer", f"scan switch to the {size} series in an open page: first slice", switched[0], "s", 2.0, server_first))
    rows.append(row("viewer", f"scan switch to the {size} series in an open page: fully scrollable", switched[1], "s", 2.0, server_first))
    rows.append(row("viewer", f"scrolling {size} (wheel, axial, 3 planes)", slices_s, "slices/s", 30.0, server_rate))
    rows.append(row("viewer", f"native re-read of the {size} DICOM series", reread, "s", None, None))
    rows.append(row("viewer", f"writing the {size} DICOM series (setup)", written, "s", None, None))
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a 256×256×150 series")
    parser.add_argument("--port", type=int, default=0, help="the dashboard's port (default: a free one)")
    args = parser.parse_args()
    for result in main(quick=args.quick, port=args.port):
        ratio = f"{result['ratio']:.2f}" if result["ratio"] is not None else "-"
        baseline = f"{result['baseline']:.3f}" if result["baseline"] is not None else "-"
        print(f"{result['figure']}: {result['value']:.3f} {result['unit']} "
              f"(target {result['target']}, baseline {baseline}, ratio {ratio})")
