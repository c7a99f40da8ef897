"""Team review under load: keyboard labels in Chromium while a job writes the catalog.

Three reviewers (browser contexts) sign in to one `ctae dashboard` on a synthetic catalog and
label a blinded double-read session by keyboard, round-robin, first without a job (the
baseline), then while a process holds the catalog read-write as `ctae score` does (1 s holds,
50 ms gaps). Printed: acknowledgement (keydown → "Saved" in the page) and next-scan times,
p50 / p99, with-job / baseline ratios, and labels lost (acknowledged but absent from the catalog
after the job). Also the data layer alone: a journal write against the old direct DuckDB write,
both while the job holds the catalog.

Run: ``.venv/bin/python benchmarks/bench_team_review.py [--quick]``.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ctae_core.review_assignment import assign_reads  # noqa: E402
from data_catalog import CatalogBusyError, CatalogSettings, connect  # noqa: E402
from data_catalog.accounts import add_account, users_path  # noqa: E402
from data_catalog.journal import open_journal  # noqa: E402
from data_catalog.review import add_label  # noqa: E402
from data_catalog.sessions import add_reads, create_session  # noqa: E402
from jobs.synthetic_catalog import SyntheticSpec, build_synthetic_catalog  # noqa: E402
from tests.dashboard import team_session as ts  # noqa: E402

REVIEWERS = ("bea", "cyd", "dan")


def _label_rounds(pages, queues, start: int, stop: int) -> list[ts.Timed]:
    timed = []
    for k in range(start, stop):
        waiting = []
        for reviewer, page in pages.items():
            queue = queues[reviewer]
            if k < len(queue):
                nxt = queue[k + 1] if k + 1 < len(queue) else None
                verdict = ("inlier", "outlier", "unsure")[k % 3]
                waiting.append(ts.press_label(page, reviewer, verdict, nxt)[1])
        timed += [finish() for finish in waiting]
    return timed


def _summary(name: str, timed: list[ts.Timed]) -> dict[str, float]:
    ack = [t.ack_ms for t in timed]
    nxt = [t.next_ms for t in timed if t.next_ms is not None]
    row = {"ack_p50": statistics.median(ack), "ack_p99": ts.percentile(ack, 99),
           "next_p50": statistics.median(nxt), "next_p99": ts.percentile(nxt, 99)}
    print(f"{name:<12} n={len(timed):3d}  ack p50 {row['ack_p50']:6.0f} ms  p99 "
          f"{row['ack_p99']:6.0f} ms   next scan p50 {row['next_p50']:6.0f} ms  p99 "
          f"{row['next_p99']:6.0f} ms")
    return row


def _data_layer(settings: CatalogSettings, sid: str, queues, n: int) -> None:
    """Journal write vs the old direct DuckDB label write, both while a job holds the catalog."""
    writer = ts.start_job_writer(settings.catalog_path)
    journal_ms, duckdb_ms, busy = [], [], 0
    try:
        scans = queues["bea"][:n]
        for scan in scans:
            t = time.perf_counter()
            with open_journal(settings.catalog_path) as j:
                add_reads(j, session_id=sid, reviewer="bea", scan_ids=[scan], verdict="unsure")
            journal_ms.append((time.perf_counter() - t) * 1e3)
            t = time.perf_counter()
            try:
                with connect(settings.catalog_path, wait_s=8.0) as con:
                    add_label(con, scan_id=scan, reviewer="old-path", verdict="unsure")
            except CatalogBusyError:
                busy += 1
            duckdb_ms.append((time.perf_counter() - t) * 1e3)
    finally:
        writer.stdin.close()
        writer.stdout.readline()
        writer.wait(timeout=10)
    for name, ms in (("journal", journal_ms), ("duckdb (old)", duckdb_ms)):
        print(f"data layer {name:<13} n={len(ms)}  p50 {statistics.median(ms):7.1f} ms  p99 "
              f"{ts.percentile(ms, 99):7.1f} ms  max {max(ms):7.1f} ms")
    print(f"ratio old/journal p50 {statistics.median(duckdb_ms) / statistics.median(journal_ms):.0f}×"
          f"; old path gave up (8 s) {busy} times")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="12 scans instead of 60")
    args = parser.parse_args()
    n_scans = 12 if args.quick else 60
    work = Path(tempfile.mkdtemp(prefix="ctae-bench-team-"))
    settings = CatalogSettings.resolve(work / "catalog.duckdb", work / "store", env={})
    # every scan of the session its own volume, about the size of a CT at 3 mm, so that the next
    # scan's planes are new images (drawn, not taken from the browser's cache)
    build_synthetic_catalog(settings, SyntheticSpec(n_scans=max(200, n_scans),
                                                    n_volume_files=n_scans,
                                                    shape_zyx=(80, 128, 128)))
    for name in REVIEWERS:
        add_account(users_path(settings.catalog_path), name, "reviewer", f"pw-{name}-123")
    queues = assign_reads([f"syn{i:07d}" for i in range(n_scans)], REVIEWERS, 2, seed=0)
    with open_journal(settings.catalog_path) as j:
        sid = create_session(j, name="bench", created_by="bench", run_id="synthetic",
                             source="bench", reads_per_scan=2, show_others=False,
                             show_model=False, queues=queues)
    port = ts.free_port()
    server = ts.start_dashboard(settings.catalog_path, port)
    started = time.perf_counter()
    try:
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(ts.CHROMIUM), args=ts.ARGS)
            pages = {r: ts.sign_in(browser, f"http://127.0.0.1:{port}", r, f"pw-{r}-123")
                     for r in REVIEWERS}
            rounds = max(len(q) for q in queues.values())
            base = _summary("no job", _label_rounds(pages, queues, 0, rounds // 2))
            writer = ts.start_job_writer(settings.catalog_path)
            try:
                job_timed = _label_rounds(pages, queues, rounds // 2, rounds)
            finally:
                writer.stdin.close()
                holds = int(writer.stdout.readline())
                writer.wait(timeout=10)
            job = _summary("job writing", job_timed)
            browser.close()
        print(f"ratio job/no job: ack p99 {job['ack_p99'] / base['ack_p99']:.2f}, "
              f"next p99 {job['next_p99'] / base['next_p99']:.2f}; {holds} catalog holds")
        with connect(settings.catalog_path) as con:
            kept = {tuple(r) for r in con.execute(
                "SELECT reviewer, scan_id FROM labels WHERE session_id = ?", [sid]).fetchall()}
        lost = [(t.reviewer, t.scan_id) for t in job_timed if (t.reviewer, t.scan_id) not in kept]
        print(f"labels acknowledged while the job wrote: {len(job_timed)}, lost: {len(lost)}")
        _data_layer(settings, sid, queues, 10 if args.quick else 40)
        print(f"whole run {time.perf_counter() - started:.0f} s")
    finally:
        ts.stop(server)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
