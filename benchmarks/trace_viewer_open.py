"""Where a viewer open's time goes, on the browser's own clock (ms from navigation start).

For each open of ``/viewer?scan=ID`` by a returning visitor (and of a bare one-line Streamlit
page, the floor; each target in its own browser context, as a returning visitor of that page
alone) it prints: the page's HTML and scripts, the websocket's open, its first message sent (the
rerun request), every message received (size; the one that carries the viewer element is
marked), the viewer iframe's insertion, its navigation start, HTML, main.js, each fetch (bytes,
start, end), the first slice drawn, scrollable, full resolution, and bench_viewer's own clock of
the first slice; then the medians. ``--against TREE`` times that source tree's viewer too,
interleaved. ``--profile``: for one open of each viewer, the renderer's CPU profile (self time by
script and by function) and a Chromium performance trace of the main thread from the viewer
element's arrival to its iframe's insertion (exclusive time by event; JavaScript by function).

Run: ``.venv/bin/python benchmarks/trace_viewer_open.py --port 8811 [--repeats 5] [--profile]
[--against /tmp/v-old]`` (ports N, N+1 for TREE, N+2 for the bare page; reuses
benchmarks/out/trace/ when it holds the series; ``--fresh`` rebuilds it).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("CTAE_BENCH_OUT", str(ROOT / "benchmarks" / "out" / "trace"))

from benchmarks import bench_viewer  # noqa: E402
from data_catalog import connect  # noqa: E402
from tests.dashboard.viewer_browser import (  # noqa: E402
    BROWSER_ARGS,
    CHROMIUM,
    open_scan,
    start_dashboard,
)

WATCH = """
(() => {
  const t = (window.__trace = { ws: [], iframe: null });
  const Native = window.WebSocket;
  window.WebSocket = function (...a) {
    const ws = new Native(...a);
    ws.binaryType = 'arraybuffer';
    ws.addEventListener('open', () => t.ws.push({ at: performance.now(), what: 'open' }));
    const send = ws.send.bind(ws);
    ws.send = (d) => { t.ws.push({ at: performance.now(), what: 'sent', bytes: d.byteLength || d.length }); send(d); };
    ws.addEventListener('message', (e) => {
      const bytes = e.data.byteLength || e.data.size || e.data.length;
      let viewer = false;
      if (e.data instanceof ArrayBuffer) {
        const s = new TextDecoder('latin1').decode(e.data);
        viewer = s.includes('ctae_scan_viewer');
      }
      t.ws.push({ at: performance.now(), what: 'received', bytes, viewer });
      if (viewer) performance.mark('ctae:viewer-msg');
    });
    return ws;
  };
  window.WebSocket.prototype = Native.prototype;
  Object.assign(window.WebSocket, { CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3 });
  new MutationObserver(() => {
    if (!t.iframe && document.querySelector('iframe[title*="ctae_scan_viewer"]')) {
      t.iframe = performance.now();
      performance.mark('ctae:iframe');
    }
    if (!t.bare && [...document.querySelectorAll('[data-testid="stMarkdown"]')]
        .some(e => e.innerText.includes('A bare Streamlit page'))) t.bare = performance.now();
  }).observe(document, { childList: true, subtree: true });
})();
"""

COLLECT = """() => {
  const nav = performance.getEntriesByType('navigation')[0];
  const res = performance.getEntriesByType('resource').map(r => ({ name: r.name.split('/').slice(-2).join('/'),
    start: r.startTime, end: r.responseEnd, bytes: r.transferSize || r.encodedBodySize }));
  const frame = [...document.querySelectorAll('iframe')].find(f => f.title.includes('ctae_scan_viewer'));
  let inner = null;
  if (frame) {
    const w = frame.contentWindow, shift = w.performance.timeOrigin - performance.timeOrigin;
    const fnav = w.performance.getEntriesByType('navigation')[0];
    inner = { origin: shift, html: fnav ? shift + fnav.responseEnd : null,
      dcl: fnav ? shift + fnav.domContentLoadedEventEnd : null,
      resources: w.performance.getEntriesByType('resource').map(r => ({ name: r.name.split('/').slice(-2).join('/'),
        start: shift + r.startTime, end: shift + r.responseEnd, bytes: r.transferSize || r.encodedBodySize })),
      first: w.ctaeViewer.at.first - performance.timeOrigin,
      crosshairFull: (w.ctaeViewer.at.crosshairFull || NaN) - performance.timeOrigin,
      scrollable: w.ctaeViewer.at.scrollable - performance.timeOrigin,
      loaded: w.ctaeViewer.at.loaded - performance.timeOrigin };
  }
  return { html: nav.responseEnd, dcl: nav.domContentLoadedEventEnd, load: nav.loadEventEnd,
           res, ws: window.__trace.ws, iframe: window.__trace.iframe, bare: window.__trace.bare, inner };
}"""

_VIEWER_DONE = """() => { const f = [...document.querySelectorAll('iframe')].find(f => f.title.includes('ctae_scan_viewer'));
  return f && f.contentWindow.ctaeViewer && f.contentWindow.ctaeViewer.ready; }"""


def _prepared() -> tuple[Path, str]:
    catalog = bench_viewer.OUT / "catalog.duckdb"
    if catalog.exists():
        with connect(catalog, read_only=True) as con:
            found = con.execute("SELECT scan_id FROM scans WHERE source_path = '.'").fetchone()
        if found:
            return catalog, found[0]
    settings, scan_id, _ = bench_viewer.prepare((300, 512, 512))
    return settings.catalog_path, scan_id


def _summary(trace: dict) -> dict[str, float]:
    """The milestones of one open, ms from navigation start."""
    ws = trace["ws"]
    got = [m for m in ws if m["what"] == "received"]
    out = {"html": trace["html"], "dcl": trace["dcl"],
           "ws open": next((m["at"] for m in ws if m["what"] == "open"), float("nan")),
           "rerun sent": next((m["at"] for m in ws if m["what"] == "sent"), float("nan")),
           "first msg": got[0]["at"] if got else float("nan"),
           "last msg": got[-1]["at"] if got else float("nan"),
           "harness (bench_viewer's clock)": trace["harness"]}
    viewer = [m["at"] for m in got if m.get("viewer")]
    if viewer:
        out["viewer msg"] = viewer[0]
    if trace.get("bare") is not None:
        out["bare page drawn"] = trace["bare"]
    if trace["iframe"] is not None:
        out["iframe in DOM"] = trace["iframe"]
    inner = trace["inner"]
    if inner:
        out.update({"iframe start": inner["origin"], "iframe html": inner["html"],
                    "iframe dcl": inner["dcl"], "first slice": inner["first"],
                    "its slice at full resolution": inner["crosshairFull"],
                    "scrollable": inner["scrollable"], "full res": inner["loaded"]})
    return out


def _print(trace: dict, what: str) -> None:
    print(f"--- {what}")
    for m in trace["ws"]:
        mark = " (viewer element)" if m.get("viewer") else ""
        print(f"  ws {m['what']:8s} {m['at']:7.0f} ms {m.get('bytes', '')}{mark}")
    for r in trace["res"]:
        print(f"  page fetch {r['name'][-50:]:50s} {r['start']:7.0f} -> {r['end']:7.0f} ms {r['bytes']} B")
    if trace["inner"]:
        for r in trace["inner"]["resources"]:
            print(f"  iframe fetch {r['name'][-40:]:40s} {r['start']:7.0f} -> {r['end']:7.0f} ms {r['bytes']} B")
    print("  " + ", ".join(f"{k} {v:.0f}" for k, v in _summary(trace).items()))


def _profile(page, cdp, url: str) -> None:
    cdp.send("Profiler.enable")
    cdp.send("Profiler.setSamplingInterval", {"interval": 200})
    cdp.send("Profiler.start")
    page.goto(url, wait_until="commit")
    page.wait_for_function(_VIEWER_DONE, timeout=120000, polling="raf")
    profile = cdp.send("Profiler.stop")["profile"]
    nodes = {n["id"]: n for n in profile["nodes"]}
    by_script, by_function = collections.Counter(), collections.Counter()
    for sample, delta in zip(profile["samples"], profile["timeDeltas"], strict=True):
        frame = nodes[sample]["callFrame"]
        script = frame["url"].split("/")[-1] or f"({frame['functionName'] or 'native'})"
        by_script[script] += delta / 1000
        by_function[f"{frame['functionName'] or '(anonymous)'} {script}:{frame['lineNumber']}"] += delta / 1000
    print("  self time by script (ms):")
    for key, ms in by_script.most_common(12):
        print(f"  {ms:7.0f}  {key}")
    print("  self time by function (ms):")
    for key, ms in by_function.most_common(25):
        print(f"  {ms:7.0f}  {key}")


def _timeline(browser, page, url: str) -> None:
    """A Chromium performance trace of one open: the main thread's exclusive time per event kind
    from the viewer element's arrival to its iframe's insertion."""
    browser.start_tracing(page=page, categories=["devtools.timeline", "blink.user_timing", "v8.execute",
                                                 "disabled-by-default-devtools.timeline",
                                                 "disabled-by-default-v8.cpu_profiler"])
    page.goto(url, wait_until="commit")
    page.wait_for_function(_VIEWER_DONE, timeout=120000, polling="raf")
    events = json.loads(browser.stop_tracing())["traceEvents"]
    marks = {e["name"]: e["ts"] for e in events if e["name"].startswith("ctae:")}
    mains = {(e["pid"], e["tid"]) for e in events
             if e.get("ph") == "M" and e["name"] == "thread_name" and e["args"]["name"] == "CrRendererMain"}
    if "ctae:viewer-msg" not in marks or "ctae:iframe" not in marks:
        print("  (marks missing)", sorted(marks))
        return
    start, end = marks["ctae:viewer-msg"], marks["ctae:iframe"]
    print(f"--- timeline: viewer element -> iframe inserted, {(end - start) / 1000:.0f} ms; "
          "renderer main thread, exclusive ms by event")
    for thread in mains:
        spans = sorted((e for e in events if (e["pid"], e["tid"]) == thread and e.get("ph") == "X"
                        and e["ts"] < end and e["ts"] + e.get("dur", 0) > start),
                       key=lambda e: (e["ts"], -e.get("dur", 0)))
        own, stack = collections.Counter(), []
        for e in spans:
            b, f = max(e["ts"], start), min(e["ts"] + e.get("dur", 0), end)
            while stack and stack[-1][1] <= b:
                stack.pop()
            if stack:
                own[stack[-1][2]] -= f - b
            own[e["name"]] += f - b
            stack.append((b, f, e["name"]))
        busy = sum(v for k, v in own.items())
        if busy < 1000:
            continue
        print(f"  thread {thread}: busy {busy / 1000:.0f} ms")
        for name, us in own.most_common(14):
            print(f"  {us / 1000:7.1f}  {name}")
    _samples(events, start, end)


def _samples(events: list[dict], start: float, end: float) -> None:
    """JavaScript self time by function between ``start`` and ``end`` (trace clock), from the
    V8 sampling profiler's chunks in the trace, for the busiest profiled thread."""
    nodes, by_thread = {}, collections.defaultdict(collections.Counter)
    for e in sorted((e for e in events if e["name"] in ("Profile", "ProfileChunk")),
                    key=lambda e: e["ts"]):
        key = (e["pid"], e["id"])
        data = e["args"]["data"]
        if e["name"] == "Profile":
            nodes[key] = {"t": data.get("startTime", e["ts"])}
            continue
        state = nodes.setdefault(key, {"t": e["ts"]})
        profile = data.get("cpuProfile", {})
        for node in profile.get("nodes", []):
            frame = node["callFrame"]
            state[node["id"]] = f"{frame.get('functionName') or '(anonymous)'} {frame.get('url', '').split('/')[-1]}"
        for sample, delta in zip(profile.get("samples", []), data.get("timeDeltas", []), strict=False):
            state["t"] += delta
            if start <= state["t"] <= end:
                by_thread[key][state.get(sample, "?")] += delta
    for key, counter in sorted(by_thread.items(), key=lambda kv: -sum(kv[1].values()))[:1]:
        print(f"  JavaScript samples in that window (ms), profile {key}:")
        for name, us in counter.most_common(25):
            print(f"  {us / 1000:7.1f}  {name}")


def main(port: int, repeats: int, profile: bool, against: str | None) -> None:
    from playwright.sync_api import sync_playwright

    catalog, scan_id = _prepared()
    servers = [start_dashboard(catalog, port), bench_viewer._bare(port + 2)]
    (_, url), (_, bare_url) = servers
    targets = [("viewer", url), ("bare page", bare_url)]
    if against:  # that source tree's dashboard on a copy of the catalog, interleaved
        copy = bench_viewer.OUT / "against.duckdb"
        shutil.copy2(catalog, copy)
        servers.append(start_dashboard(copy, port + 1, Path(against)))
        targets.insert(1, (f"viewer of {against}", servers[-1][1]))
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
            contexts = {}  # one returning visitor per target: one's series must not evict another's cache
            for what, _ in targets:
                contexts[what] = browser.new_context(viewport=bench_viewer.VIEWPORT)
                contexts[what].add_init_script(WATCH)
            runs = collections.defaultdict(list)
            for i in range(repeats + 1):  # the first visit fills the browser cache
                for what, server in targets:
                    viewer = what.startswith("viewer")
                    page = contexts[what].new_page()
                    started = time.perf_counter()
                    if viewer:  # as bench_viewer times it
                        harness = open_scan(page, server, scan_id)[0]
                    else:
                        page.goto(server, wait_until="commit")
                        page.wait_for_function(bench_viewer._BARE_DRAWN, timeout=120000,
                                               polling="raf")
                        harness = time.perf_counter() - started
                    page.wait_for_function(_VIEWER_DONE if viewer else bench_viewer._BARE_DRAWN,
                                           timeout=120000, polling="raf")
                    page.wait_for_timeout(300)
                    trace = page.evaluate(COLLECT)
                    trace["harness"] = harness * 1000
                    page.close()
                    if i:
                        _print(trace, f"{what}, returning visitor, round {i} ({bench_viewer._load()})")
                        runs[what].append(_summary(trace))
            for what, summaries in runs.items():
                keys = summaries[0].keys()
                print(f"=== {what}, medians of {len(summaries)} (ms from navigation start): " + ", ".join(
                    f"{k} {statistics.median(s[k] for s in summaries if k in s):.0f}" for k in keys))
            if profile:
                for what, server in targets:
                    if what.startswith("viewer"):
                        print(f"--- {what}: main-thread CPU profile of one open")
                        page = contexts[what].new_page()
                        _profile(page, contexts[what].new_cdp_session(page), f"{server}/viewer?scan={scan_id}")
                        page.close()
                        page = contexts[what].new_page()
                        _timeline(browser, page, f"{server}/viewer?scan={scan_id}")
            browser.close()
    finally:
        for server, _ in servers:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8811, help="dashboard port (+2: the bare page)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--fresh", action="store_true", help="rebuild the series and catalog")
    parser.add_argument("--against", metavar="TREE", help="also time this source tree's viewer "
                        "(e.g. `git worktree add /tmp/v-old 5f82971`), interleaved")
    args = parser.parse_args()
    if args.fresh:
        shutil.rmtree(bench_viewer.OUT, ignore_errors=True)
    main(args.port, args.repeats, args.profile, args.against)
    print(json.dumps({"load": bench_viewer._load()}))
