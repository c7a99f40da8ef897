"""Screenshots of the interactive viewer at a scan's hottest |error| regions, one per region:
opened at the first, then after each click of *next region* (the README's figure).

    python tools/shot_regions.py --catalog C --run R --scan SCAN_ID --out docs/screenshots/regions

Serves `ctae dashboard` on a copy of the catalog (nothing is written to yours) in Debian's
Chromium, headless; writes OUT_1.png, OUT_2.png, ... (the viewer's frame).
"""

from __future__ import annotations

import argparse
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(catalog: Path, run_id: str, scan_id: str, out: Path) -> list[Path]:
    from playwright.sync_api import sync_playwright

    from tests.dashboard.viewer_browser import (
        BROWSER_ARGS,
        CHROMIUM,
        start_dashboard,
        viewer_frame,
        wait_drawn,
    )

    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "catalog.duckdb"
        shutil.copy(catalog, copy)
        proc, url = start_dashboard(copy, _free_port())
        shots = []
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                started = time.perf_counter()
                page.goto(f"{url}/viewer?scan={scan_id}&run={run_id}", wait_until="commit", timeout=120000)
                wait_drawn(page, scan_id, started, 120000)
                frame = viewer_frame(page)
                frame.select_option("#preset", "bone")
                regions = frame.evaluate("() => window.ctaeViewer.regions()")
                for k in range(len(regions)):
                    if k:
                        frame.click("#next_region")
                    page.wait_for_timeout(500)  # drawn on the next animation frame
                    shots.append(out.with_name(f"{out.name}_{k + 1}.png"))
                    page.locator('iframe[title*="ctae_scan_viewer"]').screenshot(path=shots[-1])
                browser.close()
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    return shots


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalog", type=Path, required=True)
    parser.add_argument("--run", required=True)
    parser.add_argument("--scan", required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    print(*main(args.catalog, args.run, args.scan, args.out), sep="\n")
