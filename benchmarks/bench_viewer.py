"""The interactive viewer on a 512×512×300 CT series, in headless Chromium (SwiftShader WebGL).

Figures (each against a baseline measured in the same run):
- open: from navigating to ``/viewer?scan=ID`` until NiiVue has drawn the series as acquired,
  cold (the series read from its DICOM files) and warm (cached) — target ≤ 2 s; baseline: the
  server-rendered view's first images of the same scan; the client's share (NiiVue parsing and
  uploading the volume to WebGL) is reported on its own;
- scrolling: axial slices per second under mouse-wheel events, one per animation frame —
  target ≥ 30; baseline: the server-rendered view, one slider step (a round trip) per slice.
Screenshots of each view go to benchmarks/out/viewer/.

Run: ``.venv/bin/python benchmarks/bench_viewer.py [--quick]`` (--quick: 256×256×150).
"""

from __future__ import annotations

import argparse
import shutil
import socket
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.rows import row  # noqa: E402
from data_catalog import CatalogSettings, connect  # noqa: E402
from jobs.ingest import run_ingest  # noqa: E402
from jobs.synthetic_catalog import SyntheticSpec, build_synthetic_catalog  # noqa: E402
from tests.dashboard.viewer_browser import (  # noqa: E402
    CHROMIUM,
    WEBGL_ARGS,
    chest_series,
    open_scan,
    scroll,
    start_dashboard,
    viewer_frame,
)

OUT = ROOT / "benchmarks" / "out" / "viewer"


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
    slider = page.locator('[data-testid="stSlider"] [role="slider"]').nth(2)  # axial slice
    started = time.perf_counter()
    for _ in range(steps):
        before = page.locator('[data-testid="stImage"] img').first.get_attribute("src")
        slider.press("ArrowRight")
        page.wait_for_function(
            "src => document.querySelector('[data-testid=\"stImage\"] img').src !== src",
            arg=before, timeout=120000)
    return first, steps / (time.perf_counter() - started)


def main(quick: bool = False, port: int = 0) -> list[dict]:
    """Measure every figure; returns the rows for benchmarks/run."""
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        raise RuntimeError(f"{CHROMIUM} is missing: apt-get install chromium")
    shape = (150, 256, 256) if quick else (300, 512, 512)
    size = f"{shape[2]}×{shape[1]}×{shape[0]}"
    settings, scan_id, written = prepare(shape)
    proc, url = start_dashboard(settings.catalog_path, port or _port())
    rows = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=WEBGL_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            cold = open_scan(page, url, scan_id, timeout_ms=900000)
            client_cold = viewer_frame(page).evaluate("() => window.ctaeViewer.loadMs") / 1000
            print(f"open cold {cold:.1f} s, of which NiiVue {client_cold:.1f} s", flush=True)
            page.close()  # a fresh tab: a page busy with a large WebGL upload unloads slowly
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            warm = open_scan(page, url, scan_id, timeout_ms=900000)
            frame = viewer_frame(page)
            client_warm = frame.evaluate("() => window.ctaeViewer.loadMs") / 1000
            print(f"open warm {warm:.1f} s, of which NiiVue {client_warm:.1f} s", flush=True)
            rate = scroll(frame, 3.0)
            slices_s = rate["slices"] / rate["seconds"]
            print(f"scrolling {slices_s:.1f} slices/s ({rate})", flush=True)
            for layout, name in (("3", "three_planes"), ("0", "axial"), ("1", "coronal"), ("2", "sagittal")):
                # SwiftShader keeps the page busy drawing a large series: wait minutes, not 30 s
                frame.select_option("#layout", layout, timeout=600000)
                page.wait_for_timeout(500)
                page.screenshot(path=OUT / f"{name}.png", timeout=600000)
            server_first, server_rate = _server_baseline(page, 3 if quick else 5)
            print(f"server-rendered: first {server_first:.1f} s, {server_rate:.2f} slices/s", flush=True)
            page.screenshot(path=OUT / "server_rendered.png")
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    rows.append(row("viewer", f"open {size} as acquired, cold (DICOM read + send + NiiVue)", cold, "s", 2.0, server_first))
    rows.append(row("viewer", f"open {size} as acquired, warm (cached on the server)", warm, "s", 2.0, server_first))
    rows.append(row("viewer", "  of which NiiVue parse + WebGL upload + first draw, cold", client_cold, "s", None, cold))
    rows.append(row("viewer", "  of which NiiVue parse + WebGL upload + first draw, warm", client_warm, "s", None, warm))
    rows.append(row("viewer", f"scrolling {size} (wheel, axial)", slices_s, "slices/s", 30.0, server_rate))
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
