"""Drive a team review in Chromium: a real `ctae dashboard`, reviewers signed in in their own
browser contexts, keyboard labels timed in the page, and a writer holding the catalog as
`ctae score` does. Shared by tests/dashboard/test_team_browser.py and
benchmarks/bench_team_review.py."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
KEYS = {"inlier": "i", "outlier": "o", "unsure": "u"}
# The review pane drawn in the browser (dashboard/review_pane/), a same-origin iframe.
PANE = 'iframe[title="dashboard.review_component.ctae_review_pane"]'
# In-page timing: from the keydown the shortcut listener stamped, until the acknowledgement is in
# the DOM, and until the next scan is drawn (its heading in the DOM and its plane images new and
# loaded), in the page or in the review pane's frame (either build's pane). A MutationObserver
# and image load events note the first time of each.
_WATCH = """(args) => {
  window.__ack = null; window.__next = null;
  for (const [doc, obs, onload] of window.__watched || []) {
    obs.disconnect(); doc.removeEventListener('load', onload, true);
  }
  const docs = () => [document, ...[...document.querySelectorAll(args.pane)]
    .map(f => f.contentDocument).filter(d => d && d.body)];
  const all = (sel) => docs().flatMap(d => [...d.querySelectorAll(sel)]);
  const images = () => all('[data-testid="stImage"] img, #images img');
  const before = new Set(images().map(i => i.src));
  const drawn = () => {
    const now = images();
    return now.length > 0 && now.some(i => !before.has(i.src))
      && now.every(i => i.complete && i.naturalWidth > 0);
  };
  const check = () => {
    const t = performance.now();
    const text = docs().map(d => d.body.textContent).join(' ');  // no layout, unlike innerText
    if (!window.__ack && text.includes(args.saved)) window.__ack = t;
    if (!window.__next && all('h3').some(h => h.textContent.includes(args.next))
        && drawn()) window.__next = t;
  };
  window.__watched = docs().map(doc => {
    const obs = new MutationObserver(check);
    obs.observe(doc.body, {subtree: true, childList: true, characterData: true,
                           attributes: true, attributeFilter: ['src']});
    doc.addEventListener('load', check, true);  // an image finished loading
    return [doc, obs, check];
  });
}"""


@dataclass(frozen=True)
class Timed:
    """One keyboard label: who, which scan, the verdict, and the times seen in the browser."""

    reviewer: str
    scan_id: str
    verdict: str
    ack_ms: float
    next_ms: float | None


def free_port() -> int:
    """$CTAE_TEST_PORT when set (a shared machine hands out ports), else a port nobody listens on."""
    if os.environ.get("CTAE_TEST_PORT"):
        return int(os.environ["CTAE_TEST_PORT"])
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_dashboard(catalog: Path, port: int, root: Path = ROOT) -> subprocess.Popen:
    """`ctae dashboard` (of the source tree ``root``) on the catalog, once /_stcore/health answers."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "jobs", "dashboard", "--catalog", str(catalog), "--port",
         str(port), "--no-browser"],
        cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1).read() == b"ok":
                return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("`ctae dashboard` did not answer /_stcore/health within 30 s")


def stop(proc: subprocess.Popen) -> None:
    """Stop a process we started, by its id."""
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def start_job_writer(catalog: Path, hold_s: float = 1.0, gap_s: float = 0.05) -> subprocess.Popen:
    """A process that writes the catalog like `ctae score` (through ``data_catalog.connect``,
    which waits for readers and absorbs the journal): holds it read-write for ``hold_s``, lets go
    for ``gap_s``, again, until its stdin closes. Prints the number of holds at the end."""
    code = f"""
import sys, threading, time
from data_catalog import connect
done = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
holds = 0
while not done.is_set():
    with connect({str(catalog)!r}) as con:
        if holds == 0:
            print('holding', flush=True)
        con.execute("UPDATE runs SET epochs_done = epochs_done + 1")
        done.wait({hold_s})
    holds += 1
    time.sleep({gap_s})
print(holds, flush=True)
"""
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout.readline().strip() == "holding"
    return proc


def stop_job_writer(proc: subprocess.Popen) -> int:
    """Stop the writer of :func:`start_job_writer`; returns how many times it held the catalog."""
    proc.stdin.close()
    out = proc.stdout.read()  # up to its end: the count is its last word
    proc.wait(timeout=10)
    return int(out.split()[-1])


def settle(page) -> None:
    """Wait until Streamlit has finished the current run."""
    page.wait_for_timeout(150)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=30000)


def sign_in(browser, url: str, name: str, password: str):
    """A new browser context (its own cookies and Streamlit session) signed in as ``name``."""
    page = browser.new_context(viewport={"width": 1300, "height": 1000}).new_page()
    page.goto(url, wait_until="domcontentloaded")
    page.get_by_role("textbox", name="User name").wait_for(timeout=120000)  # a loaded machine
    page.get_by_role("textbox", name="User name").fill(name)
    page.get_by_role("textbox", name="Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_selector("h1:has-text('My reviews'), h1:has-text('Overview')", timeout=60000)
    settle(page)
    return page


def review_frame(page):
    """The review pane's frame when the browser draws it, else the page (the server's pane)."""
    return page.frame_locator(PANE) if page.locator(PANE).count() else page


def pane_frame(page):
    """The browser review pane's frame, to evaluate scripts in (``window.ctaeReview``)."""
    return page.locator(PANE).element_handle().content_frame()


def current_scan(page) -> str:
    """The scan id in the 'Scan `…`' heading of the review pane."""
    return review_frame(page).locator("h3", has_text="Scan ").first.inner_text().split()[-1].strip("`")


def wait_for_keys(page) -> None:
    """Wait until the page answers the review keys (the browser pane's or the shortcuts')."""
    page.wait_for_function("() => !!(window.__ctaeReviewKeys || window.__ctaeShortcutListener)",
                           timeout=30000)


def press_label(page, reviewer: str, verdict: str, next_scan: str | None) -> tuple[str, callable]:
    """Press the verdict's key on the shown scan; returns (scan, a function that waits and gives
    the Timed result), so several reviewers can press before anyone waits."""
    scan = current_scan(page)
    wait_for_keys(page)
    page.evaluate(_WATCH, {"saved": f"Saved: {scan} → {verdict}", "next": next_scan or "\u0000",
                           "pane": PANE})
    page.keyboard.press(KEYS[verdict])

    def finish() -> Timed:
        page.wait_for_function("() => window.__ack !== null", timeout=30000, polling="raf")
        if next_scan:
            page.wait_for_function("() => window.__next !== null", timeout=30000, polling="raf")
        ack, nxt, pressed = page.evaluate(
            "() => [window.__ack, window.__next, window.__ctaeLastShortcutAt]")
        settle(page)
        return Timed(reviewer, scan, verdict, ack - pressed,
                     None if not next_scan else nxt - pressed)

    return scan, finish


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank), as a p99 over few labels must be the worst one."""
    ordered = sorted(values)
    rank = max(1, int(-(-q * len(ordered) // 100)))
    return ordered[rank - 1]
