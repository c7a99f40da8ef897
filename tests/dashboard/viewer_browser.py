"""Helpers that drive the interactive viewer in headless Chromium, shared by the browser test
and benchmarks/bench_viewer.py: a CT series on disk, the dashboard server, opening a scan and
scrolling it with the mouse wheel."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np

from ctae_core.io.dicom_writer import write_series

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
BASE_ARGS = [
    "--headless", "--no-sandbox", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
BROWSER_ARGS = [*BASE_ARGS, "--disable-gpu", "--disable-gpu-vsync", "--disable-frame-rate-limit"]
"""No GPU (the viewer draws with Canvas 2D on the CPU). Headless Chromium paces animation frames
at ~6/s unless vsync and the frame-rate limit are off, as a desktop browser's are not."""
FRAME = "ctae_scan_viewer"


def chest_series(out_dir: Path, shape_zyx: tuple[int, int, int], spacing_zyx_mm=(1.0, 0.7, 0.7),
                 seed: int = 0) -> Path:
    """Write a chest-like int16 CT series (body, lungs, spine, a metal lead) as DICOM."""
    nz, ny, nx = shape_zyx
    rng = np.random.default_rng(seed)
    y, x = np.ogrid[:ny, :nx]
    plane = np.full((ny, nx), -1000, np.int16)
    plane[((y - ny / 2) / (0.36 * ny)) ** 2 + ((x - nx / 2) / (0.45 * nx)) ** 2 <= 1] = 40
    for side in (-1, 1):
        plane[((y - ny * 0.47) / (0.22 * ny)) ** 2 + ((x - nx / 2 - side * 0.2 * nx) / (0.14 * nx)) ** 2 <= 1] = -850
    plane[(y - ny * 0.72) ** 2 + (x - nx / 2) ** 2 <= (0.05 * nx) ** 2] = 700
    hu = np.repeat(plane[None], nz, axis=0)
    hu += rng.integers(-20, 21, hu.shape, dtype=np.int16)
    lead_x = int(nx * 0.62)
    hu[:, int(ny * 0.35):int(ny * 0.35) + 3, lead_x:lead_x + 3] = 3000  # a pacemaker lead
    write_series(hu, spacing_zyx_mm, out_dir)
    return out_dir


def start_dashboard(catalog: Path, port: int, tree: Path = ROOT) -> tuple[subprocess.Popen, str]:
    """`ctae dashboard` of the source ``tree`` on ``port``; returns (process, URL) once it
    answers /_stcore/health."""
    return serve([sys.executable, "-m", "jobs", "dashboard", "--catalog", str(catalog), "--port",
                  str(port), "--no-browser"], tree, port)


def serve(command: list[str], tree: Path, port: int) -> tuple[subprocess.Popen, str]:
    """A Streamlit server started by ``command`` in ``tree`` (on the path) on ``port``;
    returns (process, URL) once it answers /_stcore/health."""
    proc = subprocess.Popen(command, cwd=tree, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "PYTHONPATH": str(tree), "PYTHONUNBUFFERED": "1"})
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=1).read() == b"ok":
                return proc, url
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"{' '.join(command[:4])} did not answer /_stcore/health within 90 s")


def viewer_frame(page, timeout_ms: int = 60000):
    """The viewer component's iframe, once it exists."""
    page.wait_for_selector(f'iframe[title*="{FRAME}"]', timeout=timeout_ms)
    return next(f for f in page.frames if FRAME in f.url)


def open_scan(page, url: str, scan_id: str, timeout_ms: int = 120000) -> tuple[float, float, float]:
    """Open ``scan_id`` in the viewer; seconds from navigation until its first slice is drawn,
    until every slice can be drawn (preview or full resolution) and until the whole series has
    arrived at full resolution (watched from the page, as a bare page is timed: waiting inside
    the viewer's new frame would add Playwright's own set-up of that frame, ~0.5 s)."""
    started = time.perf_counter()
    page.goto(f"{url}/viewer?scan={scan_id}", wait_until="commit", timeout=timeout_ms)
    return wait_drawn(page, scan_id, started, timeout_ms)


SCROLLABLE = ("(v.scrollableMs === undefined ? v.ready : v.scrollableMs !== null)")
"""Every slice drawable; a viewer without a preview (before it had one) is so once all arrived."""
_VIEWER = f"""(() => {{ if (window.ctaeViewer) return window.ctaeViewer;
    const f = [...document.querySelectorAll('iframe')].find(f => f.title.includes('{FRAME}'));
    return f && f.contentWindow && f.contentWindow.ctaeViewer; }})()"""
"""The viewer's state, from its own frame or from the page around it."""


def wait_drawn(where, scan_id: str, started: float, timeout_ms: int) -> tuple[float, float, float]:
    """Seconds since ``started`` (perf_counter) until ``scan_id``'s first slice is drawn, until
    every slice can be drawn, and until the whole series has arrived at full resolution;
    ``where``: the page or the viewer's frame."""
    seen = (f"id => {{ const v = {_VIEWER}; if (!v || !(v.error || String(v.key).startsWith(id + ':')"
            " && (WHEN))) return false; return [v.firstDrawMs !== null, " + SCROLLABLE + ", v.ready]; }")
    times: list[float] = []
    for k, ready in enumerate(("v.firstDrawMs !== null", SCROLLABLE, "v.ready")):
        if len(times) > k:  # this milestone was already reached when the one before was seen
            continue
        reached = where.wait_for_function(seen.replace("WHEN", ready), arg=scan_id,
                                          timeout=timeout_ms, polling="raf").json_value()
        times.append(time.perf_counter() - started)
        while len(times) < 3 and reached[len(times)]:  # reached together: the same time
            times.append(times[-1])
    error = where.evaluate(f"() => {_VIEWER}.error")
    if error:
        raise RuntimeError(f"viewer failed: {error}")
    return times[0], times[1], times[2]


SCROLL_JS = """
async (ms) => {
  const viewer = window.ctaeViewer;
  const canvas = document.getElementById('view');
  const box = canvas.getBoundingClientRect();
  const tile = viewer.tile('axial');
  const at = { clientX: box.left + tile.x + tile.w / 2, clientY: box.top + tile.y + tile.h / 2 };
  const depth = viewer.shape()[0];
  let direction = 1, changes = 0, frames = 0;
  let z = viewer.cursor()[2];
  const drawsBefore = viewer.draws;
  const started = performance.now();
  while (performance.now() - started < ms) {
    canvas.dispatchEvent(new WheelEvent('wheel', { deltaY: -direction * 100, bubbles: true,
                                                   cancelable: true, ...at }));
    await new Promise(r => requestAnimationFrame(r));
    frames += 1;
    const now = viewer.cursor()[2];
    if (now !== z) changes += 1;
    if (now <= 0 || now >= depth - 1) direction = -direction;
    z = now;
  }
  return { slices: changes, frames, draws: viewer.draws - drawsBefore,
           seconds: (performance.now() - started) / 1000 };
}
"""


def scroll(frame, seconds: float = 2.0) -> dict:
    """Scroll the axial plane with wheel events, one per animation frame, for ``seconds``;
    returns slices changed, frames, redraws and the time taken."""
    return frame.evaluate(SCROLL_JS, int(seconds * 1000))


WHEEL_STEP_JS = """
(up) => {
  const canvas = document.getElementById('view');
  const box = canvas.getBoundingClientRect();
  const tile = window.ctaeViewer.tile('axial');
  canvas.dispatchEvent(new WheelEvent('wheel', { deltaY: up ? -100 : 100, bubbles: true, cancelable: true,
                                                 clientX: box.left + tile.x + tile.w / 2,
                                                 clientY: box.top + tile.y + tile.h / 2 }));
  return window.ctaeViewer.cursor()[2];
}
"""


def wheel_step(frame, up: bool) -> int:
    """One wheel notch on the axial tile (up: the next slice); returns the crosshair's slice."""
    return frame.evaluate(WHEEL_STEP_JS, up)


def shown_voxel(frame) -> list[int]:
    """The crosshair's voxel (x, y, z) in the displayed scan."""
    return frame.evaluate("() => window.ctaeViewer.cursor()")
