"""What users wait for, timed the way they meet it: whole commands as processes, pages in a
headless Chromium. Each figure comes with a baseline measured in the same run.

    .venv/bin/python benchmarks/bench_user.py [--quick] [--only ingest cli explorer train]
        [--against OLD_CHECKOUT] [--repeats N]

- ingest: `python -m jobs ingest TREE` against `dcm2niix -z n -b n -o OUT -f %j TREE` on one
  copy and on six copies of the real chest series (distinct series / SOP UIDs), fresh catalog
  each time, page cache warm, median of 3 interleaved runs, wall and CPU seconds (the CPU
  figure survives a loaded machine). "each series beyond the first" is (six − one) / 5 for both
  tools. Also the time from starting the six-series ingest to its first progress output.
  ``--against DIR`` times the build checked out in DIR in the same interleaved runs.
- cli: `python -m jobs --help` against the bare interpreter (`python -c pass`).
- explorer: the Outlier explorer in headless Chromium (Debian's /usr/bin/chromium, Python
  Playwright) on synthetic catalogs of 100k and 1M scans, from navigation until every plot is
  drawn (median of visits by a browser that has the dashboard's scripts cached, and the very
  first visit after the server started); a filter change (the log score axis) until both
  scatters are redrawn; the Overview page the same way. Baseline: a bare one-line Streamlit
  page served beside the dashboard and timed the same way, interleaved.
- train: `tiny` training volumes/s of `python -m jobs train` on a small synthetic cohort, idle
  and while one single-threaded busy process runs (the baseline is the idle figure).

Outputs go to benchmarks/out/user/; the dashboard server listens on port 8619 (--port), the
bare page on the next port, an earlier build (--against CHECKOUT, timed beside this one,
interleaved) on the one after (or free ones).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.rows import row as _row  # noqa: E402

OUT = ROOT / "benchmarks" / "out" / "user"
PYTHON = sys.executable
CHEST = (
    ROOT.parent / "shared" / "data" / "real-ct" / "dlwpt-cptac-lscc-chest" / "volumetric-dicom"
    / "2-LUNG 3.0  B70f-04083"
)
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
PORT = 8619
"""The dashboard's port; the bare page is served on the next one, an earlier build on the one
after (free ones where these are taken)."""
SIZES: list[int] | None = None
"""Explorer catalog sizes (--sizes); None: 100k, and 1M unless --quick."""
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}


def _wall(command: list[str], **kwargs) -> float:
    """Seconds the command takes as a process; raises with its output if it fails."""
    return _timed(command, **kwargs)[0]


def _timed(command: list[str], root: Path = ROOT, **kwargs) -> tuple[float, float]:
    """(wall, CPU) seconds of the command as a process, its children included, run with the
    code of ``root`` (another checkout: ``--against``); raises with its output if it fails."""
    env = {**ENV, "PYTHONPATH": str(root)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=root, **kwargs)
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {done.returncode}:\n{done.stderr[-2000:]}")
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return elapsed, cpu


# ---------------------------------------------------------------- ingest
def chest_tree(folder: Path, copies: int) -> Path:
    """``copies`` copies of the real chest series, each with its own series and SOP UIDs."""
    import pydicom
    from pydicom.uid import generate_uid

    if folder.is_dir() and len(list(folder.glob("series*"))) == copies:
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    files = sorted(CHEST.iterdir())
    for k in range(copies):
        series = folder / f"series{k}"
        series.mkdir(parents=True)
        series_uid = generate_uid()
        for path in files:
            ds = pydicom.dcmread(path)
            ds.SeriesInstanceUID = series_uid
            ds.SOPInstanceUID = generate_uid()
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            ds.save_as(series / path.name)
    return folder


def _ctae_ingest(tree: Path, scratch: Path, root: Path = ROOT) -> tuple[float, float]:
    shutil.rmtree(scratch, ignore_errors=True)
    catalog = scratch / "catalog.duckdb"
    return _timed([PYTHON, "-m", "jobs", "ingest", str(tree), "--catalog", str(catalog),
                   "--no-progress"], root)  # fmt: skip


def _first_output(tree: Path, scratch: Path, root: Path = ROOT) -> float:
    """Seconds from starting `ctae ingest TREE` (progress shown) to its first output on stderr;
    the process is then stopped."""
    shutil.rmtree(scratch, ignore_errors=True)
    started = time.perf_counter()
    process = subprocess.Popen(
        [PYTHON, "-m", "jobs", "ingest", str(tree), "--catalog", str(scratch / "catalog.duckdb")],
        cwd=root, env={**ENV, "PYTHONPATH": str(root)}, stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    assert process.stderr is not None
    process.stderr.read(1)
    elapsed = time.perf_counter() - started
    process.kill()
    process.wait()
    return elapsed


def _dcm2niix(exe: str, tree: Path, scratch: Path) -> tuple[float, float]:
    return _timed([exe, "-z", "n", "-b", "n", "-o", str(_fresh(scratch)), "-f", "%j", str(tree)])


def bench_ingest(repeats: int, against: Path | None = None) -> list[dict]:
    """Ingest of one and six real chest series as processes, against dcm2niix (and, with
    ``against``, the build checked out there), interleaved; wall and CPU seconds."""
    exe = shutil.which("dcm2niix") or str(Path(PYTHON).with_name("dcm2niix"))
    if not Path(exe).exists() or not CHEST.is_dir():
        print("   ingest skipped: dcm2niix or the shared chest series is missing")
        return []
    one, six = chest_tree(OUT / "chest-x1", 1), chest_tree(OUT / "chest-x6", 6)
    builds = {"ctae": ROOT} | ({"other": against} if against else {})
    wall: dict[str, list[float]] = defaultdict(list)
    cpu: dict[str, list[float]] = defaultdict(list)
    for tree in (one, six):  # warm the page cache and the interpreter's files
        for root in builds.values():
            _ctae_ingest(tree, OUT / "scratch-ctae", root)
        _dcm2niix(exe, tree, OUT / "scratch-d2n")
    loads = [os.getloadavg()[0]]
    for _ in range(repeats):
        for n, tree in (("1", one), ("6", six)):
            for build, root in builds.items():
                w, c = _ctae_ingest(tree, OUT / "scratch-ctae", root)
                wall[f"{build} {n}"].append(w)
                cpu[f"{build} {n}"].append(c)
            w, c = _dcm2niix(exe, tree, OUT / "scratch-d2n")
            wall[f"d2n {n}"].append(w)
            cpu[f"d2n {n}"].append(c)
            if n == "6":
                for build, root in builds.items():
                    wall[f"{build} first output"].append(
                        _first_output(tree, OUT / "scratch-ctae", root)
                    )
        loads.append(os.getloadavg()[0])
    med = {k: statistics.median(v) for k, v in wall.items()}
    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    print(f"   load average (1 min) during the ingest runs: {min(loads):.1f}-{max(loads):.1f}")
    for key in sorted(med):
        cpu_text = f"  CPU {med_cpu[key]:.3f} s" if key in med_cpu else ""
        print(f"   {key:8s} wall {med[key]:.3f} s{cpu_text}  (median of {repeats})")
    rows = []
    for build in builds:
        name = "user: ingest (process)" if build == "ctae" else f"user: ingest, {against}"
        each = (med[f"{build} 6"] - med[f"{build} 1"]) / 5
        each_d2n = (med["d2n 6"] - med["d2n 1"]) / 5
        rows += [
            _row(name, "one chest series, s", med[f"{build} 1"], "s", "<= 1.0 s", med["d2n 1"]),
            _row(name, "six chest series, s", med[f"{build} 6"], "s", "<= 1.5x dcm2niix",
                 med["d2n 6"]),
            _row(name, "each series beyond the first, s", each, "s", "<= 1.0x dcm2niix", each_d2n),
            _row(name, "one chest series, CPU s", med_cpu[f"{build} 1"], "s", "",
                 med_cpu["d2n 1"]),
            _row(name, "six chest series, CPU s", med_cpu[f"{build} 6"], "s", "",
                 med_cpu["d2n 6"]),
            _row(name, "six series: first progress output, s", med[f"{build} first output"],
                 "s", "<= 1 s"),
        ]  # fmt: skip
    return rows


def _fresh(folder: Path) -> Path:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


# ---------------------------------------------------------------- CLI start-up
def bench_cli(repeats: int) -> list[dict]:
    """`python -m jobs --help` as a process, against the bare interpreter."""
    help_runs, bare_runs = [], []
    _wall([PYTHON, "-m", "jobs", "--help"])
    for _ in range(max(3, repeats)):
        help_runs.append(_wall([PYTHON, "-m", "jobs", "--help"]))
        bare_runs.append(_wall([PYTHON, "-c", "pass"]))
    return [
        _row("user: CLI", "`ctae --help`, s", statistics.median(help_runs), "s", "<= 0.3 s",
             statistics.median(bare_runs))
    ]


# ---------------------------------------------------------------- explorer in Chromium
def synthetic_catalog(n_scans: int) -> Path:
    """A synthetic catalog of ``n_scans`` scans with one run (built once, reused)."""
    from data_catalog import CatalogSettings
    from jobs.synthetic_catalog import SyntheticSpec, build_synthetic_catalog

    folder = OUT / f"catalog-{n_scans}"
    catalog = folder / "catalog.duckdb"
    if (folder / "done").exists():
        return catalog
    shutil.rmtree(folder, ignore_errors=True)
    settings = CatalogSettings.resolve(catalog, folder / "store", env={})
    build_synthetic_catalog(settings, SyntheticSpec(n_scans=n_scans))
    (folder / "done").touch()
    return catalog


def _free_port(preferred: int) -> int:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", preferred))
        except OSError:
            sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Dashboard:
    """`python -m jobs dashboard` on a catalog (or, without one, Streamlit serving a bare
    one-line page), stopped on exit."""

    def __init__(self, catalog: Path | None, port: int, root: Path = ROOT) -> None:
        self.port = _free_port(port)
        self.url = f"http://127.0.0.1:{self.port}"
        if catalog is None:
            BARE_PAGE.write_text(f"import streamlit as st\n\nst.write({BARE_TEXT!r})\n")
            command = [PYTHON, "-m", "streamlit", "run", str(BARE_PAGE), "--server.port",
                       str(self.port), "--server.address", "127.0.0.1", "--server.headless",
                       "true", "--browser.gatherUsageStats", "false"]  # fmt: skip
        else:
            command = [PYTHON, "-m", "jobs", "dashboard", "--catalog", str(catalog), "--port",
                       str(self.port), "--no-browser"]  # fmt: skip
        self.proc = subprocess.Popen(
            command, cwd=root, env={**ENV, "PYTHONPATH": str(root)}, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=1).read() == b"ok":
                    return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError("the dashboard did not answer /_stcore/health within 60 s")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()

    def __enter__(self) -> Dashboard:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


BARE_PAGE = OUT / "bare_page.py"
BARE_TEXT = "A bare Streamlit page"
_BARE_DRAWN = f"""() => !document.querySelector('[data-testid="stStatusWidget"]')
    && [...document.querySelectorAll('[data-testid="stMarkdown"]')]
        .some(e => e.innerText.includes('{BARE_TEXT}'))"""
_CHARTS = """() => [
    ...[...document.querySelectorAll('.js-plotly-plot')]
        .filter(p => p._fullLayout && p.querySelector('.main-svg')),
    ...[...document.querySelectorAll('[data-testid="stEChartsChart"][_echarts_instance_]')]
        .filter(e => e.querySelector('canvas, svg') && e.getAttribute('aria-label')
            && e.getAttribute('aria-busy') !== 'true'),
]"""  # Plotly plots and ECharts charts drawn (ECharts names a chart once it has drawn it)
_DRAWN = f"""(n) => {{
    const busy = document.querySelector('[data-testid="stStatusWidget"]')
        || document.querySelector('[data-testid="stSkeleton"]');
    return !busy && ({_CHARTS})().length >= n;
}}"""
_LOG_AXES = """() => {
    const busy = document.querySelector('[data-testid="stStatusWidget"]');
    const plotly = [...document.querySelectorAll('.js-plotly-plot')].slice(0, 2)
        .filter(p => p._fullLayout && p._fullLayout.yaxis.type === 'log');
    const echarts = [...document.querySelectorAll('[data-testid="stEChartsChart"][_echarts_instance_]')]
        .slice(0, 2).filter(e => (e.getAttribute('aria-label') || '').includes('log score axis'));
    return !busy && plotly.length + echarts.length === 2;
}"""  # ECharts draws on a canvas: its accessible name says which axis it drew


def time_page(context, url: str, plots: int, timeout_s: float = 180) -> tuple[float, object]:
    """Seconds from navigation until ``plots`` Plotly plots are drawn and nothing runs (with
    ``plots`` 0: until the bare page's text is drawn)."""
    page = context.new_page()
    started = time.perf_counter()
    page.goto(url, wait_until="commit")
    if plots:
        page.wait_for_function(_DRAWN, arg=plots, timeout=timeout_s * 1000, polling="raf")
    else:
        page.wait_for_function(_BARE_DRAWN, timeout=timeout_s * 1000, polling="raf")
    elapsed = time.perf_counter() - started
    if page.locator('[data-testid="stException"]').count():
        raise RuntimeError(f"{url}: the page shows an exception")
    return elapsed, page


def time_filter_change(page, timeout_s: float = 60) -> float:
    """Seconds from switching on the log score axis until both scatters show it."""
    toggle = page.get_by_text("Log score axis")
    started = time.perf_counter()
    toggle.click()
    page.wait_for_function(_LOG_AXES, timeout=timeout_s * 1000, polling="raf")
    return time.perf_counter() - started


def bench_explorer(
    sizes: list[int], repeats: int, against: Path | None = None, port: int = PORT
) -> list[dict]:
    """The explorer and the Overview at each size in Chromium, against a bare one-line
    Streamlit page served and timed the same way (Streamlit's own floor); with ``against`` (a
    checkout of an earlier build) its pages too, on the same catalog, interleaved."""
    if not CHROMIUM.exists():
        print(f"   explorer skipped: {CHROMIUM} is missing (apt-get install chromium)")
        return []
    from contextlib import ExitStack

    from playwright.sync_api import sync_playwright

    rows = []
    targets = {100_000: "<= 2 s", 1_000_000: "<= 4 s"}
    viewport = {"width": 1400, "height": 1000}
    for n in sizes:
        catalog = synthetic_catalog(n)
        with ExitStack() as stack:
            server = stack.enter_context(Dashboard(catalog, port))
            bare_server = stack.enter_context(Dashboard(None, port + 1))
            builds = {"": server}
            if against is not None:
                builds["before: "] = stack.enter_context(Dashboard(catalog, port + 2, against))
            browser = stack.enter_context(sync_playwright()).chromium.launch(
                executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
            )
            # the very first visit: nothing cached in the server or the browser
            first = {}
            for build, srv in builds.items():
                first[build], page = time_page(browser.new_context(viewport=viewport),
                                               f"{srv.url}/explorer", 3)
                page.close()
            # then a user who has the dashboard open: Streamlit's scripts in the browser cache
            context = browser.new_context(viewport=viewport)
            for srv in builds.values():
                time_page(context, f"{srv.url}/", 1)[1].close()
            time_page(context, f"{bare_server.url}/", 0)[1].close()
            times: dict[str, list[float]] = {"bare": []}
            for _ in range(repeats):  # interleaved: the machine's load falls on every page
                times["bare"].append(time_page(context, f"{bare_server.url}/", 0)[0])
                for build, srv in builds.items():
                    elapsed, page = time_page(context, f"{srv.url}/", 1)
                    times.setdefault(f"{build}overview", []).append(elapsed)
                    page.close()
                    elapsed, page = time_page(context, f"{srv.url}/explorer", 3)
                    times.setdefault(f"{build}explorer", []).append(elapsed)
                    times.setdefault(f"{build}change", []).append(time_filter_change(page))
                    page.close()
            browser.close()
        med = {k: statistics.median(v) for k, v in times.items()}
        base = med["bare"]
        name = f"user: explorer {n // 1000}k scans (Chromium)"
        for build in builds:
            rows += [
                _row(name, f"{build}navigation to every plot drawn, s", med[f"{build}explorer"],
                     "s", targets.get(n, "") if not build else "", base),
                _row(name, f"{build}Overview page drawn, s", med[f"{build}overview"], "s", "",
                     base),
                _row(name, f"{build}filter change (log axis), s", med[f"{build}change"], "s",
                     "<= 1 s" if not build else "", base),
                _row(name, f"{build}first visit (server and browser cold), s", first[build],
                     "s", "", base),
            ]
        if against is not None:
            rows += [
                _row(name, f"{what}, this build / before", med[key], "x", "",
                     ratio=med[key] / med[f"before: {key}"])
                for what, key in (("explorer", "explorer"), ("Overview", "overview"),
                                  ("filter change", "change"))
            ]
    return rows


# ---------------------------------------------------------------- training under load
def _train_volumes_per_s(catalog: Path, run: str, epochs: int) -> float:
    """Median volumes/s over the epochs after the first, as `ctae train` records them."""
    import duckdb

    _wall([PYTHON, "-m", "jobs", "train", "--run", run, "--preset", "tiny", "--epochs",
           str(epochs), "--catalog", str(catalog), "--no-progress"])
    with duckdb.connect(str(catalog), read_only=True) as con:
        rates = [r[0] for r in con.execute(
            "SELECT volumes_per_s FROM train_history WHERE run_id = ? AND epoch > 1 ORDER BY epoch",
            [run],
        ).fetchall()]
    return statistics.median(rates)


def bench_train(epochs: int) -> list[dict]:
    """`tiny` training speed as a process, idle and beside one busy single-threaded process."""
    from data_catalog import CatalogSettings
    from jobs.synthetic_catalog import SyntheticSpec, build_synthetic_catalog

    folder = OUT / "train"
    shutil.rmtree(folder, ignore_errors=True)
    settings = CatalogSettings.resolve(folder / "catalog.duckdb", folder / "store", env={})
    spec = SyntheticSpec(n_scans=40, run_id=None, n_volume_files=8, shape_zyx=(48, 80, 80))
    build_synthetic_catalog(settings, spec)
    idle = _train_volumes_per_s(settings.catalog_path, "idle", epochs)
    busy = subprocess.Popen([PYTHON, "-c", "while True: pass"])
    try:
        loaded = _train_volumes_per_s(settings.catalog_path, "loaded", epochs)
    finally:
        busy.kill()
        busy.wait()
    return [
        _row("user: train tiny (process)", "volumes/s beside a busy process", loaded, "vol/s",
             ">= 0.7x idle", idle)
    ]


# ---------------------------------------------------------------- main
BENCHES: dict[str, Callable[[bool, Path | None, int | None], list[dict]]] = {
    "ingest": lambda quick, against, repeats: bench_ingest(repeats or 3, against),
    "cli": lambda quick, against, repeats: bench_cli(repeats or 3),
    "explorer": lambda quick, against, repeats: bench_explorer(
        SIZES or ([100_000] if quick else [100_000, 1_000_000]),
        repeats or (2 if quick else 3), against, PORT,
    ),
    "train": lambda quick, against, repeats: bench_train(3 if quick else 4),
}


def main(
    quick: bool = False,
    only: list[str] | None = None,
    against: Path | None = None,
    repeats: int | None = None,
) -> list[dict]:
    OUT.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    for name, bench in BENCHES.items():
        if only and name not in only:
            continue
        print(f"   user: {name}", flush=True)
        rows += bench(quick, against, repeats)
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100k scans only, fewer repeats")
    parser.add_argument("--only", nargs="*", choices=list(BENCHES), help="some benchmarks only")
    parser.add_argument("--against", type=Path, help="a checkout of an earlier build "
                        "(`git worktree add /tmp/old COMMIT`): its ingest and explorer are timed "
                        "beside this build's, interleaved")  # fmt: skip
    parser.add_argument("--port", type=int, default=PORT, help="the dashboard's port; the bare "
                        "page gets the next one, the earlier build the one after")
    parser.add_argument("--sizes", type=int, nargs="*", help="explorer catalog sizes (scans)")
    parser.add_argument("--repeats", type=int, help="runs per figure (default 3; explorer visits "
                        "per page 2 with --quick)")  # fmt: skip
    args = parser.parse_args()
    PORT, SIZES = args.port, args.sizes
    for row in main(args.quick, args.only, args.against, args.repeats):
        ratio = "" if row["ratio"] is None else f"  ratio {row['ratio']:.2f} (baseline {row['baseline']})"
        print(f"{row['benchmark']:38s} {row['figure']:36s} {row['value']:9.3f} {row['unit']}{ratio}")
