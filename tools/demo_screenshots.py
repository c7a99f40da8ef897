"""Screenshots of a running dashboard (e.g. `ctae demo --no-browser --port 8597`) for the README.

    .venv/bin/python tools/demo_screenshots.py --url http://127.0.0.1:8597 --run demo --out docs/screenshots

Uses Debian's /usr/bin/chromium through Playwright, headless, like the browser test.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from playwright.sync_api import sync_playwright

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PAGES = {"": "overview", "explorer": "explorer", "viewer": "viewer"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default="http://127.0.0.1:8501")
    parser.add_argument("--run", default="demo")
    parser.add_argument("--out", type=Path, default=Path("tools/out"))
    parser.add_argument("--wait-ms", type=int, default=9000, help="time for a page to render")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        for path, name in PAGES.items():
            page.goto(f"{args.url}/{path}?run={args.run}", wait_until="domcontentloaded")
            page.wait_for_timeout(args.wait_ms)
            if page.locator('[data-testid="stException"]').count():
                raise SystemExit(f"{name}: the page shows an exception")
            page.screenshot(path=str(args.out / f"demo_{name}.png"))
        browser.close()


if __name__ == "__main__":
    main()
