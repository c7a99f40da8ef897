"""The interactive viewer on a 512×512×300 CT series, in headless Chromium without a GPU.

Figures (each against a baseline measured in the same run):
- open: from navigating to ``/viewer?scan=ID`` until the first slice is drawn, until the series is
  **scrollable** (every slice of every plane can be drawn: at full resolution, or from a
  whole-volume preview — the coarsest, every 4th voxel, comes first) and until it is all there at
  full resolution — target ≤ 2 s for first slice and scrollable; also each minus the bare page
  opened in the same round (what the viewer page costs beyond Streamlit's own start; ≤ ~0.9 s).
  Watched from the page, as the bare page is (waiting inside the viewer's frame added ~0.5 s of
  Playwright's own set-up of that frame to the figures before this build's). Cold (the series read from its DICOM
  files), then rounds of warm opens (cached on the server) by a first-time visitor (a fresh
  browser profile) and by a returning one (Streamlit's scripts cached), interleaved with the same
  navigation to a bare one-line Streamlit page (Streamlit's own floor) and to the Overview, and
  with ``--against REV``: to the same series on that git revision, served beside this build
  (its own catalog copy) so that both meet the same load. The browser clock's figure (the
  page's navigation start to the viewer's draw, no harness latency) is printed too;
- scan switch: in an open page, the review queue switched away and back to the series (a rerun,
  no page start; the browser fetches the series again) until its first slice / scrollable / all;
- scrolling: axial slices per second under mouse-wheel events, one per animation frame, three
  planes shown — target ≥ 30; baseline: the server-rendered view, one slider step (a round
  trip) per slice;
- the native re-read of the series' DICOM files alone (what a cold open pays once);
- first open in a running dashboard: the server warm, its viewer cache emptied before each
  open, so the series is read from its DICOM files and cached again (a scan nobody opened yet).
Chromium runs with --disable-gpu --disable-gpu-vsync --disable-frame-rate-limit (no GPU;
animation frames as fast as a desktop browser's, not headless's ~6/s). The load average is
printed with every figure. Screenshots of each view go to benchmarks/out/viewer/.

Run: ``.venv/bin/python benchmarks/bench_viewer.py [--quick] [--port N] [--against 9643f45]
[--repeats 3]`` (--quick: 256×256×150; ports N, N+1 (REV), N+2 (the bare page)).
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
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
    serve,
    start_dashboard,
    viewer_frame,
    wait_drawn,
)

OUT = Path(os.environ.get("CTAE_BENCH_OUT", ROOT / "benchmarks" / "out" / "viewer"))
VIEWPORT = {"width": 1400, "height": 1100}
BARE_TEXT = "A bare Streamlit page"
_BARE_DRAWN = f"""() => !document.querySelector('[data-testid="stStatusWidget"]')
    && [...document.querySelectorAll('[data-testid="stMarkdown"]')]
        .some(e => e.innerText.includes('{BARE_TEXT}'))"""
_OVERVIEW_DRAWN = """() => !document.querySelector('[data-testid="stStatusWidget"]')
    && ([...document.querySelectorAll('.js-plotly-plot')].some(p => p._fullLayout)
        || [...document.querySelectorAll('[data-testid="stEChartsChart"][_echarts_instance_]')]
            .some(e => e.querySelector('canvas, svg') && e.getAttribute('aria-label')))"""
"""The Overview's training curve drawn: Plotly before 7a4e7af, ECharts since (it names a chart
once drawn), so --against an earlier build times its page the same way."""
_BROWSER_CLOCK = """() => { const v = window.ctaeViewer; return v.at
    ? [v.at.first, v.at.crosshairFull, v.at.scrollable, v.at.loaded]
        .map(t => t ? (t - window.parent.performance.timeOrigin) / 1000 : null)
    : null; }"""


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


def _against(rev: str, catalog: Path, port: int) -> tuple[subprocess.Popen, str]:
    """Git revision ``rev``'s dashboard on a copy of the catalog (same store), beside this one."""
    from benchmarks.bench_team_review import _source_tree

    work = OUT / "against"
    shutil.rmtree(work, ignore_errors=True)
    tree = _source_tree(rev, work)
    copy = work / "catalog.duckdb"
    shutil.copy2(catalog, copy)
    return start_dashboard(copy, port, tree)


def _bare(port: int) -> tuple[subprocess.Popen, str]:
    page = OUT / "bare_page.py"
    page.write_text(f"import streamlit as st\n\nst.write({BARE_TEXT!r})\n")
    return serve([sys.executable, "-m", "streamlit", "run", str(page), "--server.port", str(port),
                  "--server.address", "127.0.0.1", "--server.headless", "true",
                  "--browser.gatherUsageStats", "false"], ROOT, port)


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


def _open(context, url: str, scan_id: str, what: str) -> tuple[float, float, float]:
    """(first slice, scrollable, all at full resolution) seconds from navigation, in a new page
    of ``context``; prints the browser's own clock and share too."""
    page = context.new_page()
    times = open_scan(page, url, scan_id, timeout_ms=900000)
    frame = viewer_frame(page)
    clock = frame.evaluate(_BROWSER_CLOCK)
    own = ", ".join(f"{v:.2f}" if v is not None else "-" for v in clock) if clock else "-"
    viewer = [frame.evaluate(f"() => window.ctaeViewer.{k}") for k in ("firstDrawMs", "loadMs")]
    print(f"  open {what}: first slice {times[0]:.2f} s, scrollable {times[1]:.2f} s, full "
          f"resolution {times[2]:.2f} s (browser clock from navigation start: first slice, the "
          f"crosshair's slice at full resolution, scrollable, all: {own}; the viewer "
          f"itself: {viewer[0] / 1000:.2f} / {viewer[1] / 1000:.2f} s), {_load()}", flush=True)
    page.close()
    return times


def _page(context, url: str, drawn: str, what: str) -> float:
    """Seconds from navigation until ``drawn`` holds, in a new page of ``context``."""
    page = context.new_page()
    started = time.perf_counter()
    page.goto(url, wait_until="commit", timeout=300000)
    page.wait_for_function(drawn, timeout=300000, polling="raf")
    elapsed = time.perf_counter() - started
    print(f"  {what}: {elapsed:.2f} s, {_load()}", flush=True)
    page.close()
    return elapsed


def _switch_back(page, frame, scan_id: str) -> tuple[float, float, float]:
    """Seconds from picking the series again in the open page (the review queue switched to
    the flagged scans and back: a rerun, no page start) until its first slice is drawn /
    scrollable / all here."""
    page.get_by_text(review_queue.FLAGGED_FIRST, exact=True).click()
    frame.wait_for_function(
        "id => window.ctaeViewer.ready && !String(window.ctaeViewer.key).startsWith(id + ':')",
        arg=scan_id, timeout=900000)
    started = time.perf_counter()
    page.get_by_text(review_queue.SELECTION, exact=True).click()
    times = wait_drawn(frame, scan_id, started, 900000)
    print(f"scan switch: first slice {times[0]:.2f} s, scrollable {times[1]:.2f} s, all "
          f"{times[2]:.2f} s, {_load()}", flush=True)
    return times


def _rounds(browser, targets: dict[str, tuple], repeats: int) -> dict[tuple[str, str], list]:
    """Each target opened ``repeats`` times by a first-time visitor (fresh profile) and by a
    returning one (scripts cached), the targets interleaved so that all meet the same load."""
    returning = {name: browser.new_context(viewport=VIEWPORT) for name in targets}
    for name, (kind, url, arg) in targets.items():  # the returning visitor's earlier visit
        _measure(returning[name], kind, url, arg, f"{name}, first visit of the returning browser")
    times: dict[tuple[str, str], list] = {}
    for round_ in range(repeats):
        print(f"round {round_ + 1} of {repeats}", flush=True)
        for visitor in ("first-time", "returning"):
            for name, (kind, url, arg) in targets.items():
                context = (browser.new_context(viewport=VIEWPORT) if visitor == "first-time"
                           else returning[name])
                times.setdefault((name, visitor), []).append(
                    _measure(context, kind, url, arg, f"{name}, {visitor} visitor"))
                if visitor == "first-time":
                    context.close()
    return times


def _first_opens(browser, url: str, scan_id: str, repeats: int) -> list[tuple[float, float, float]]:
    """A series opened for the first time in a dashboard already running (server warm, the
    visitor's scripts cached): before each open the server's viewer cache is emptied, so the
    series is read from its DICOM files and its cache written again, as for a scan nobody has
    opened yet."""
    from dashboard.scan_volumes import VIEWER_CACHE  # the served folder the server uses

    context = browser.new_context(viewport=VIEWPORT)
    _open(context, url, scan_id, "this build, the returning visitor's earlier visit")
    times = []
    for _ in range(repeats):
        for entry in VIEWER_CACHE.iterdir() if VIEWER_CACHE.exists() else ():
            shutil.rmtree(entry, ignore_errors=True)
        times.append(_open(context, url, scan_id,
                           "this build, first open of the series in a running dashboard"))
    context.close()
    return times


def _measure(context, kind: str, url: str, arg: str, what: str):
    if kind == "viewer":
        return _open(context, url, arg, what)
    return (_page(context, url, arg, what),) * 3


def main(quick: bool = False, port: int = 0, against: str | None = None,
         repeats: int = 3) -> list[dict]:
    """Measure every figure; returns the rows for benchmarks/run."""
    from playwright.sync_api import sync_playwright

    from ctae_core.io.native_series import read_native_volume

    if not CHROMIUM.exists():
        raise RuntimeError(f"{CHROMIUM} is missing: apt-get install chromium")
    print(f"start: {_load()}", flush=True)
    shape = (150, 256, 256) if quick else (300, 512, 512)
    size = f"{shape[2]}×{shape[1]}×{shape[0]}"
    settings, scan_id, written = prepare(shape)
    ports = [port, port + 1, port + 2] if port else [_port(), _port(), _port()]
    servers = [start_dashboard(settings.catalog_path, ports[0])]
    rows = []
    try:
        servers.append(_bare(ports[2]))
        targets = {"this build": ("viewer", servers[0][1], scan_id),
                   "bare page": ("page", servers[1][1], _BARE_DRAWN),
                   "Overview": ("page", servers[0][1] + "/", _OVERVIEW_DRAWN)}
        if against:
            servers.append(_against(against, settings.catalog_path, ports[1]))
            targets[against] = ("viewer", servers[2][1], scan_id)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
            cold = {name: _open(browser.new_context(viewport=VIEWPORT), url, scan_id,
                                f"{name}, cold (the DICOM files read)")
                    for name, (kind, url, _) in targets.items() if kind == "viewer"}
            warm = _rounds(browser, targets, repeats)
            first_opens = _first_opens(browser, servers[0][1], scan_id, repeats)
            page = browser.new_page(viewport=VIEWPORT)
            open_scan(page, servers[0][1], scan_id, timeout_ms=900000)
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
        for proc, _ in servers:
            proc.terminate()
            proc.wait(timeout=30)
    started = time.perf_counter()
    read_native_volume(str(OUT / "source" / "chest"), ".")
    reread = time.perf_counter() - started
    print(f"native re-read of the DICOM files alone: {reread:.2f} s; end: {_load()}", flush=True)
    medians = {key: [statistics.median(t[i] for t in runs) for i in range(3)]
               for key, runs in warm.items()}
    for name, times in cold.items():
        what = f"open {size} as acquired, cold (DICOM read), {name}"
        rows.append(row("viewer", f"{what}: first slice", times[0], "s", 2.0, server_first))
        rows.append(row("viewer", f"{what}: scrollable", times[1], "s", 2.0, server_first))
        rows.append(row("viewer", f"{what}: full resolution", times[2], "s", None, server_first))
    first_open = [statistics.median(t[i] for t in first_opens) for i in range(3)]
    what = f"open {size}, first open of the series in a running dashboard (DICOM read, cache written; median)"
    rows.append(row("viewer", f"{what}: first slice", first_open[0], "s", 2.0, server_first))
    rows.append(row("viewer", f"{what}: scrollable", first_open[1], "s", 2.0, server_first))
    rows.append(row("viewer", f"{what}: full resolution", first_open[2], "s", None, server_first))
    for visitor in ("first-time", "returning"):
        bare = medians["bare page", visitor][0]
        overview = medians["Overview", visitor][0]
        rows.append(row("viewer", f"  a bare Streamlit page, {visitor} visitor (median)", bare, "s"))
        rows.append(row("viewer", f"  the Overview page, {visitor} visitor (median)", overview, "s", None, bare))
        for name in [n for n, (kind, _, _) in targets.items() if kind == "viewer"]:
            first, scrollable, full = medians[name, visitor]
            what = f"open {size}, warm, {visitor} visitor, {name} (median; ratio to the Overview)"
            rows.append(row("viewer", f"{what}: first slice", first, "s", 2.0, overview))
            rows.append(row("viewer", f"{what}: scrollable", scrollable, "s", 2.0, overview))
            rows.append(row("viewer", f"{what}: full resolution", full, "s", None, overview))
            beyond = [statistics.median(t[i] - b[0] for t, b in zip(
                warm[name, visitor], warm["bare page", visitor], strict=True)) for i in range(2)]
            what = f"  {name}, {visitor} visitor, minus the bare page of the same round (median)"
            rows.append(row("viewer", f"{what}: first slice", beyond[0], "s", 0.9))
            rows.append(row("viewer", f"{what}: scrollable", beyond[1], "s", 0.9))
            if against and name == "this build":
                base = medians[against, visitor]
                for i, figure in enumerate(("first slice", "scrollable")):
                    rows.append(row("viewer", f"  this build / {against}, {visitor}: {figure}",
                                    (first, scrollable)[i], "s", None, base[i]))
    rows.append(row("viewer", f"scan switch to the {size} series in an open page: first slice", switched[0], "s", 2.0, server_first))
    rows.append(row("viewer", f"scan switch to the {size} series in an open page: scrollable", switched[1], "s", 2.0, server_first))
    rows.append(row("viewer", f"scan switch to the {size} series in an open page: full resolution", switched[2], "s", None, server_first))
    rows.append(row("viewer", f"scrolling {size} (wheel, axial, 3 planes)", slices_s, "slices/s", 30.0, server_rate))
    rows.append(row("viewer", f"native re-read of the {size} DICOM series", reread, "s", None, None))
    rows.append(row("viewer", f"writing the {size} DICOM series (setup)", written, "s", None, None))
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a 256×256×150 series")
    parser.add_argument("--port", type=int, default=0, help="the dashboard's port (default: a free one)")
    parser.add_argument("--against", metavar="REV", help="also serve git revision REV, interleaved")
    parser.add_argument("--repeats", type=int, default=3, help="rounds of warm opens")
    args = parser.parse_args()
    for result in main(quick=args.quick, port=args.port, against=args.against, repeats=args.repeats):
        ratio = f"{result['ratio']:.2f}" if result["ratio"] is not None else "-"
        baseline = f"{result['baseline']:.3f}" if result["baseline"] is not None else "-"
        print(f"{result['figure']}: {result['value']:.3f} {result['unit']} "
              f"(target {result['target']}, baseline {baseline}, ratio {ratio})")
