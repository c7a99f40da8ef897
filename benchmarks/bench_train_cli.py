"""`ctae train` of the default model (`tiny_dae`) timed as users meet it: the whole process,
this build against git revision REV, alternated, on an idle machine and beside one busy
single-threaded process started in this session.

Stop 53 left OpenMP's default wait policy (spin a moment, then sleep) to jobs that start on an
idle machine, where every job had made waiting threads sleep at once (``OMP_WAIT_POLICY=PASSIVE``,
stop 25): sleeping between the U-Net's many small parallel regions had made its training steps
1.5x slower. Beside a busy process both builds sleep and train on the one free core.

    .venv/bin/python benchmarks/bench_train_cli.py [--quick] [--against e8b3cff] [--rounds 2]

The cohort is real anatomy (`ctae demo-data --base real`; the phantoms where `../shared/data`
is missing), ingested by this build; each training is a fresh run of 2 epochs (the second
validated, as `tiny_dae` validates from half its schedule). Prints the wall seconds of each
process and, per condition, the median over the rounds and its ratio to REV's.
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

from benchmarks.bench_score_cli import _ctae, _run  # noqa: E402
from benchmarks.bench_team_review import _source_tree  # noqa: E402
from benchmarks.bench_train_busy import BUSY_LOOP  # noqa: E402
from benchmarks.rows import against_parser, report_against, row  # noqa: E402

OUT = ROOT / "benchmarks" / "out" / "train_cli"
EPOCHS = "2"


def cohort(n: int) -> tuple[Path, Path]:
    """(catalog, store) of ``n`` ingested real-anatomy scans (phantoms without the shared data)."""
    from jobs.demo_data_real import SHARED_DATA

    shutil.rmtree(OUT, ignore_errors=True)
    catalog, store = OUT / "catalog.duckdb", OUT / "store"
    base = ("--base", "real") if SHARED_DATA.is_dir() else ()
    print(f"cohort: {n} scans of {'real anatomy' if base else f'phantoms ({SHARED_DATA} not found)'}")
    _run(ROOT, "demo-data", str(OUT / "cohort"), *base, "--n", str(n), "--seed", "0", "--outlier-rate", "0.15")
    _run(ROOT, "ingest", str(OUT / "cohort"), "--catalog", str(catalog), "--store", str(store))
    return catalog, store


def _train(tree: Path, catalog: Path, store: Path, run: str) -> float:
    """Wall seconds of one whole `ctae train` process (a fresh run)."""
    command, env = _ctae(tree, "train", "--run", run, "--preset", "tiny_dae", "--epochs", EPOCHS,
                         "--catalog", str(catalog), "--store", str(store))
    started = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=tree, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"train {run} failed: {done.stderr[-2000:]}")
    return wall


def _busy() -> subprocess.Popen:
    """One busy single-threaded process in this session (a task among ours), ending with this
    benchmark even if it is killed."""
    return subprocess.Popen([sys.executable, "-c", BUSY_LOOP])


def main(quick: bool = False, against: str = "e8b3cff", rounds: int = 2) -> list[dict]:
    scans = 20 if quick else 60
    rounds = 1 if quick else rounds
    catalog, store = cohort(scans)
    trees = {"this build": ROOT, against: _source_tree(against, OUT / "against")}
    copies = {name: OUT / f"catalog-{k}.duckdb" for k, name in enumerate(trees)}
    for copy in copies.values():
        shutil.copy2(catalog, copy)
    walls: dict[tuple[str, str], list[float]] = {}
    for name, tree in trees.items():  # warm the page cache and each tree's .pyc files
        _train(tree, copies[name], store, "warm")
    for r in range(rounds):
        for condition in ("idle", "beside a busy process"):
            busy = _busy() if condition != "idle" else None
            try:
                if busy:
                    time.sleep(1.0)  # let the load show in /proc/loadavg's runnable count
                for name, tree in trees.items():  # alternated: both meet the same load
                    wall = _train(tree, copies[name], store, f"r{r}{condition[0]}")
                    walls.setdefault((condition, name), []).append(wall)
                    print(f"{condition:22s} {name:10s} {wall:6.1f} s, load {os.getloadavg()[0]:.1f}", flush=True)
            finally:
                if busy:
                    busy.kill()
                    busy.wait()
    rows = []
    for condition in ("idle", "beside a busy process"):
        this, base = (statistics.median(walls[(condition, n)]) for n in trees)
        rows.append(row("train_cli", f"ctae train --preset tiny_dae --epochs {EPOCHS}, {scans} scans, "
                        f"{condition}: this build / {against}", this, "s", None, base))
    return report_against(rows, ROOT / "benchmarks" / "out" / "bench_train_cli.json")


if __name__ == "__main__":
    args = against_parser(__doc__, "e8b3cff", 2, "20 scans and one round instead of 60 and --rounds").parse_args()
    main(args.quick, args.against, args.rounds)
