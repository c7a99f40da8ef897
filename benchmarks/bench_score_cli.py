"""`ctae score --overwrite` of a trained run (`tiny`, the Med3D model at 6 mm, unless `--preset` says),
timed as users meet it: the whole process, this build against git revision REV, alternated on
copies of one catalog.

The default REV, faf3c35, is the last build that made a coarser run's anomaly map on the run's
own 6 mm grid; since ca98fea the map is made on the stored 3 mm grid (the reconstruction
resampled up), where a wire or an electrode keeps its HU. The figures: wall seconds (median of
the rounds after one untimed warm-up each) and peak RSS of each build's process, and the bytes
of anomaly maps the run keeps. The cohort is real anatomy (`ctae demo-data --base real`, the
scans a user's archive holds; the phantoms where `../shared/data` is missing), ingested and
trained for one epoch by this build; both builds score the same stored scans with the same
checkpoint. REV must read this build's catalog (same schema).

    .venv/bin/python benchmarks/bench_score_cli.py [--quick] [--against faf3c35] [--rounds 3]
        [--preset tiny_dae] [--remeasure]

``--remeasure`` times what a user meets after a schema migration that changed a score-time
measure (v23: the rings): before each round every scan's measures are cleared
(``data_catalog.scans.forget_acquisition``) and `ctae score` of the scored run, without
``--overwrite``, measures them anew on the stored volumes and recomputes the evidence, the
model's reconstructions kept. REV must be of this build's schema version; a change of measure
that bumps the schema is timed from a worktree of it before the bump (stop 64 timed rule 32 with
a script of its own, on copies of one catalog of each version).

Stop 51 (the default of one single-threaded scoring process per free core) used
``--preset tiny_dae --against 483830f``: the default model, against the build before; stop 53
(oneDNN's kernel for a single scan, BatchNorm folded) ``--quick --preset tiny_dae --against acd90f1``.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_team_review import _source_tree  # noqa: E402
from benchmarks.rows import against_parser, report_against, row  # noqa: E402
from tests.chaos_factory import descendants  # noqa: E402

OUT = ROOT / "benchmarks" / "out" / "score_cli"
RUN = "bench"


def _ctae(tree: Path, *args: str) -> tuple[list[str], dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    return [sys.executable, "-m", "jobs", *args, "--no-progress"], {**env, "PYTHONPATH": str(tree)}


def _run(tree: Path, *args: str) -> None:
    command, env = _ctae(tree, *args)
    subprocess.run(command, env=env, cwd=tree, check=True, capture_output=True)


def _timed(tree: Path, *args: str) -> tuple[float, float]:
    """(wall seconds, peak RSS in GB of its largest process) of one whole `ctae` process. The
    peak is each process's own high-water mark (``VmHWM``), read every 0.1 s from the command and
    every process below it: scoring workers started by a fork server are not the command's
    children, so the kernel's accounting at its exit (``wait4``) would not see them."""
    command, env = _ctae(tree, *args)
    log = OUT / "score.log"  # a file, not a pipe: a pipe nobody reads fills and stalls the job
    peaks: dict[int, int] = {}
    with log.open("wb") as stderr:
        started = time.perf_counter()
        process = subprocess.Popen(command, env=env, cwd=tree, stdout=subprocess.DEVNULL, stderr=stderr)
        while process.poll() is None:
            for pid in (process.pid, *descendants(process.pid)):
                peaks[pid] = max(peaks.get(pid, 0), _high_water_kb(pid))
            time.sleep(0.1)
        wall = time.perf_counter() - started
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {log.read_text()[-2000:]}")
    return wall, max(peaks.values(), default=0) / 1e6  # kB


def _high_water_kb(pid: int) -> int:
    """A process's peak resident memory so far (kB; 0 once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _map_bytes(store: Path) -> int:
    return sum(p.stat().st_size for p in (store / "runs" / RUN / "error").glob("*"))


def cohort(n: int, preset: str = "tiny") -> tuple[Path, Path]:
    """(catalog, store) of ``n`` real-anatomy scans (phantoms without the shared data) and run
    ``bench`` of ``preset`` trained one epoch."""
    shutil.rmtree(OUT, ignore_errors=True)
    catalog, store = OUT / "catalog.duckdb", OUT / "store"
    where = ("--catalog", str(catalog), "--store", str(store))
    from jobs.demo_data_real import SHARED_DATA

    base = ("--base", "real") if SHARED_DATA.is_dir() else ()  # else the phantoms
    print(f"cohort: {n} scans of {'real anatomy' if base else f'phantoms ({SHARED_DATA} not found)'}")
    _run(ROOT, "demo-data", str(OUT / "cohort"), *base, "--n", str(n), "--seed", "0",
         "--outlier-rate", "0.15")
    _run(ROOT, "ingest", str(OUT / "cohort"), *where)
    _run(ROOT, "train", "--run", RUN, "--preset", preset, "--epochs", "1", *where)
    return catalog, store


def _forget(catalog: Path) -> None:
    from data_catalog.connection import connect
    from data_catalog.scans import forget_acquisition

    with connect(catalog) as con:
        forget_acquisition(con)


def main(quick: bool = False, against: str = "faf3c35", rounds: int = 3, preset: str = "tiny",
         remeasure: bool = False) -> list[dict]:
    catalog, store = cohort(20 if quick else 60, preset)
    trees = {"this build": ROOT, against: _source_tree(against, OUT / "against")}
    copies = {name: OUT / f"catalog-{k}.duckdb" for k, name in enumerate(trees)}
    for copy in copies.values():
        shutil.copy2(catalog, copy)
    walls: dict[str, list[float]] = {name: [] for name in trees}
    rss: dict[str, float] = {name: 0.0 for name in trees}
    maps: dict[str, int] = {}
    for name, tree in trees.items():  # warm the page cache and each tree's .pyc files first
        _run(tree, "score", "--run", RUN, "--catalog", str(copies[name]), "--store", str(store),
             "--overwrite")
    for _ in range(rounds):
        for name, tree in trees.items():  # alternated: both meet the same machine load
            if remeasure:
                _forget(copies[name])
            wall, peak = _timed(tree, "score", "--run", RUN, "--catalog", str(copies[name]),
                                "--store", str(store), *(() if remeasure else ("--overwrite",)))
            walls[name].append(wall)
            rss[name] = max(rss[name], peak)
            maps[name] = _map_bytes(store)
            print(f"{name:10s} {wall:6.1f} s, peak RSS {peak:.2f} GB, maps {maps[name] / 1e6:.0f} MB, "
                  f"load {os.getloadavg()[0]:.1f}", flush=True)
    this, base = statistics.median(walls["this build"]), statistics.median(walls[against])
    what = "ctae score measuring anew" if remeasure else "ctae score --overwrite"
    rows = [
        row("score_cli", f"{what}, {preset}, {len(list((store / 'volumes').glob('*')))} "
            f"scans: this build / {against}", this, "s", None, base),
        row("score_cli", f"peak RSS: this build / {against}", rss["this build"], "GB", None, rss[against]),
        row("score_cli", f"anomaly maps kept: this build / {against}", maps["this build"] / 1e6, "MB",
            None, maps[against] / 1e6),
    ]
    return report_against(rows, ROOT / "benchmarks" / "out" / "bench_score_cli.json")


if __name__ == "__main__":
    parser = against_parser(__doc__, "faf3c35", 3, "20 scans instead of 60")
    parser.add_argument("--preset", default="tiny", help="the run's preset (tiny_dae: the default model)")
    parser.add_argument("--remeasure", action="store_true",
                        help="time `ctae score` measuring every scan's acquisition anew (after a "
                             "migration), not `--overwrite`")
    args = parser.parse_args()
    main(args.quick, args.against, args.rounds, args.preset, args.remeasure)
