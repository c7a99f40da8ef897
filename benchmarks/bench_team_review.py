"""Team review under load: keyboard labels in Chromium while a job writes the catalog.

Three reviewers (browser contexts) sign in to one `ctae dashboard` on a synthetic catalog and
label a blinded double-read session by keyboard, round-robin, first without a job (the
baseline), then while a process holds the catalog read-write as `ctae score` does (1 s holds,
50 ms gaps). Printed: acknowledgement (keydown → "Saved" in the page) and next-scan times,
p50 / p99, with-job / baseline ratios, and labels lost (acknowledged but absent from the catalog
after the job). Also the data layer alone: a journal write against the old direct DuckDB write,
both while the job holds the catalog.

With ``--against REF`` (e.g. ``HEAD~5`` or a branch), the same rounds also run on that git
revision of ctae, served beside this build on its own catalog, interleaved round by round so
that both meet the same load; the ratios this build / REF are printed.

Run: ``.venv/bin/python benchmarks/bench_team_review.py [--quick] [--against REF]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
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


@dataclass
class Build:
    """One dashboard under test: its source tree, catalog, session, queues and signed-in pages."""

    name: str
    root: Path
    settings: CatalogSettings
    session_id: str
    queues: dict[str, list[str]]
    port: int = 0
    server: subprocess.Popen | None = None
    pages: dict = field(default_factory=dict)
    timed: dict[str, list[ts.Timed]] = field(default_factory=dict)
    server_cpu_s: dict[str, float] = field(default_factory=dict)


def _prepare(name: str, root: Path, work: Path, n_scans: int, port: int) -> Build:
    """A synthetic catalog with three reviewers' accounts and a double-read session, served."""
    settings = CatalogSettings.resolve(work / "catalog.duckdb", work / "store", env={})
    # every scan of the session its own volume, about the size of a CT at 3 mm, so that the next
    # scan's planes are new images (drawn, not taken from the browser's cache)
    build_synthetic_catalog(settings, SyntheticSpec(n_scans=max(200, n_scans),
                                                    n_volume_files=n_scans,
                                                    shape_zyx=(80, 128, 128)))
    for reviewer in REVIEWERS:
        add_account(users_path(settings.catalog_path), reviewer, "reviewer", f"pw-{reviewer}-123")
    queues = assign_reads([f"syn{i:07d}" for i in range(n_scans)], REVIEWERS, 2, seed=0)
    with open_journal(settings.catalog_path) as j:
        sid = create_session(j, name="bench", created_by="bench", run_id="synthetic",
                             source="bench", reads_per_scan=2, show_others=False,
                             show_model=False, queues=queues)
    built = Build(name, root, settings, sid, queues, port)
    built.server = ts.start_dashboard(settings.catalog_path, port, root)
    return built


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of the dashboard's server process so far (Linux /proc): its
    work per label, which a loaded machine delays but does not inflate as it does wall-clock
    times. Its children (the journal absorber, off the reviewers' path) are not counted."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _label_round(built: Build, k: int, phase: str) -> None:
    waiting = []
    for reviewer, page in built.pages.items():
        queue = built.queues[reviewer]
        if k < len(queue):
            nxt = queue[k + 1] if k + 1 < len(queue) else None
            verdict = ("inlier", "outlier", "unsure")[k % 3]
            waiting.append(ts.press_label(page, reviewer, verdict, nxt)[1])
    built.timed.setdefault(phase, []).extend(finish() for finish in waiting)


def _summary(name: str, timed: list[ts.Timed], cpu_s: float) -> dict[str, float]:
    ack = [t.ack_ms for t in timed]
    nxt = [t.next_ms for t in timed if t.next_ms is not None]
    row = {"ack_p50": statistics.median(ack), "ack_p99": ts.percentile(ack, 99),
           "next_p50": statistics.median(nxt), "next_p99": ts.percentile(nxt, 99),
           "cpu_ms": cpu_s * 1e3 / len(timed)}
    print(f"{name:<28} n={len(timed):3d}  ack p50 {row['ack_p50']:6.0f} ms  p99 "
          f"{row['ack_p99']:6.0f} ms   next scan drawn p50 {row['next_p50']:6.0f} ms  p99 "
          f"{row['next_p99']:6.0f} ms   server CPU {row['cpu_ms']:5.0f} ms per label")
    slowest = sorted(range(len(ack)), key=ack.__getitem__)[-3:][::-1]
    print(" " * 29 + "slowest acknowledgements (label # in the phase: ms): "
          + ", ".join(f"#{i + 1}: {ack[i]:.0f}" for i in slowest))
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
        ts.stop_job_writer(writer)
    for name, ms in (("journal", journal_ms), ("duckdb (old)", duckdb_ms)):
        print(f"data layer {name:<13} n={len(ms)}  p50 {statistics.median(ms):7.1f} ms  p99 "
              f"{ts.percentile(ms, 99):7.1f} ms  max {max(ms):7.1f} ms")
    print(f"ratio old/journal p50 {statistics.median(duckdb_ms) / statistics.median(journal_ms):.0f}×"
          f"; old path gave up (8 s) {busy} times")


def _source_tree(ref: str, work: Path) -> Path:
    """The source tree of git revision ``ref`` of this repository, exported to ``work``."""
    tree = work / "tree"
    tree.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", ref], cwd=ROOT, check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return tree


def _lost(built: Build) -> int:
    with connect(built.settings.catalog_path) as con:
        kept = {tuple(r) for r in con.execute(
            "SELECT reviewer, scan_id FROM labels WHERE session_id = ?",
            [built.session_id]).fetchall()}
    return sum((t.reviewer, t.scan_id) not in kept for t in built.timed["job writing"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="12 scans instead of 60")
    parser.add_argument("--against", metavar="REF",
                        help="also serve git revision REF beside this build, rounds interleaved")
    parser.add_argument("--port", type=int, default=0, help="this build's port (default: free)")
    parser.add_argument("--against-port", type=int, default=0, help="REF's port (default: free)")
    args = parser.parse_args()
    n_scans = 12 if args.quick else 60
    work = Path(tempfile.mkdtemp(prefix="ctae-bench-team-"))
    print(f"load average {os.getloadavg()[0]:.1f} at the start")
    builds = [_prepare("this build", ROOT, work / "this", n_scans, args.port or ts.free_port())]
    started = time.perf_counter()
    try:
        if args.against:
            tree = _source_tree(args.against, work / "against")
            builds.append(_prepare(args.against, tree, work / "against", n_scans,
                                   args.against_port or ts.free_port()))
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(ts.CHROMIUM), args=ts.ARGS)
            for built in builds:
                url = f"http://127.0.0.1:{built.port}"
                built.pages = {r: ts.sign_in(browser, url, r, f"pw-{r}-123") for r in REVIEWERS}
            rounds = max(len(q) for q in builds[0].queues.values())
            for phase, ks in (("no job", range(rounds // 2)), ("job writing", range(rounds // 2, rounds))):
                writers = ([ts.start_job_writer(b.settings.catalog_path) for b in builds]
                           if phase == "job writing" else [])
                cpu_before = [_cpu_s(b.server.pid) for b in builds]
                try:
                    for k in ks:  # interleaved, each build first in turn
                        for built in builds[k % len(builds):] + builds[:k % len(builds)]:
                            _label_round(built, k, phase)
                    for built, before in zip(builds, cpu_before, strict=True):
                        built.server_cpu_s[phase] = _cpu_s(built.server.pid) - before
                finally:
                    holds = [ts.stop_job_writer(writer) for writer in writers]
            browser.close()
        print(f"load average {os.getloadavg()[0]:.1f} after the browser rounds")
        rows = {(b.name, phase): _summary(f"{b.name}, {phase}", b.timed[phase],
                                          b.server_cpu_s[phase])
                for b in builds for phase in ("no job", "job writing")}
        for built in builds:
            job, base = rows[built.name, "job writing"], rows[built.name, "no job"]
            print(f"{built.name}: ratio job/no job: ack p99 {job['ack_p99'] / base['ack_p99']:.2f}, "
                  f"next p99 {job['next_p99'] / base['next_p99']:.2f}; labels acknowledged while "
                  f"the job wrote: {len(built.timed['job writing'])}, lost: {_lost(built)}")
        if args.against:
            for phase in ("no job", "job writing"):
                this, ref = rows["this build", phase], rows[args.against, phase]
                print(f"this build / {args.against}, {phase}: ack p50 "
                      f"{this['ack_p50'] / ref['ack_p50']:.2f} p99 {this['ack_p99'] / ref['ack_p99']:.2f}"
                      f", next scan p50 {this['next_p50'] / ref['next_p50']:.2f} p99 "
                      f"{this['next_p99'] / ref['next_p99']:.2f}, server CPU per label "
                      f"{this['cpu_ms'] / ref['cpu_ms']:.2f}")
        print(f"catalog holds by the job: {holds}")
        _data_layer(builds[0].settings, builds[0].session_id, builds[0].queues,
                    10 if args.quick else 40)
        print(f"whole run {time.perf_counter() - started:.0f} s; load average "
              f"{os.getloadavg()[0]:.1f}")
    finally:
        for built in builds:
            if built.server is not None:
                ts.stop(built.server)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
