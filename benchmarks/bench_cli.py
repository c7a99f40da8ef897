"""The CLI as users feel it, every figure timed on whole processes:

- ``ctae --help``: wall time of the process (median), against a bare ``python -c pass`` in the
  same run (the interpreter's own start-up). Target 0.3 s.
- ``ctae train``: time from the process start to its first progress line on stderr (the run's
  split). Target 1 s.
- Training under load: ``ctae train`` (tiny preset) volumes/s with one other single-threaded
  busy process on the machine, against the same training with the machine idle; the default
  (threads from the free cores) and ``--threads <all cores>`` (torch's own default, the old
  behaviour). Target: >= 70 % of the idle speed.

    .venv/bin/python benchmarks/bench_cli.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.rows import row  # noqa: E402
from data_catalog import CatalogSettings, connect  # noqa: E402
from data_catalog.runs import train_history  # noqa: E402
from jobs.synthetic_catalog import SyntheticSpec, build_synthetic_catalog  # noqa: E402

OUT = ROOT / "benchmarks" / "out" / "cli"
HELP_TARGET_S = 0.3
FIRST_PROGRESS_TARGET_S = 1.0
UNDER_LOAD_TARGET = 0.7
BUSY = "while True: pass"
# the demo's stored scans are about 100 x 150 x 150 voxels at 3 mm
COHORT = SyntheticSpec(n_scans=24, run_id=None, with_embeddings=False, with_labels=False,
                       n_volume_files=24, shape_zyx=(96, 150, 150), n_ingest_errors=0)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    return {**env, "PYTHONPATH": str(ROOT)}


def _ctae(*args: str) -> list[str]:
    return [sys.executable, "-m", "jobs", *args]


def _timed(command: list[str]) -> tuple[float, float]:
    """(wall, CPU) seconds of a whole process; CPU time does not grow when others load the cores."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(command, env=_env(), cwd=ROOT, check=True, capture_output=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def help_seconds(repeats: int) -> dict[str, float]:
    """Median wall and CPU time of ``ctae --help`` and of a bare interpreter start."""
    _timed(_ctae("--help"))  # warm the page cache and the .pyc files
    helps = [_timed(_ctae("--help")) for _ in range(repeats)]
    bare = [_timed([sys.executable, "-c", "pass"]) for _ in range(repeats)]
    return {"wall": statistics.median(w for w, _ in helps), "cpu": statistics.median(c for _, c in helps),
            "bare_wall": statistics.median(w for w, _ in bare),
            "bare_cpu": statistics.median(c for _, c in bare)}


def cohort() -> CatalogSettings:
    """A fresh catalog holding the benchmark's synthetic scans."""
    shutil.rmtree(OUT, ignore_errors=True)
    settings = CatalogSettings.resolve(OUT / "catalog.duckdb", OUT / "store", env={})
    with connect(settings.catalog_path):
        pass
    build_synthetic_catalog(settings, COHORT)
    return settings


def _train_args(settings: CatalogSettings, run: str, epochs: int, *extra: str) -> list[str]:
    return _ctae("train", "--catalog", str(settings.catalog_path), "--store", str(settings.store_dir),
                 "--run", run, "--preset", "tiny", "--epochs", str(epochs), "--no-progress",
                 "--device", "cpu", *extra)


def _cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) a running process has used so far (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def first_progress_seconds(settings: CatalogSettings, run: str) -> tuple[float, float]:
    """(wall, CPU) seconds from starting ``ctae train`` to its first progress line; the run is
    then stopped."""
    started = time.perf_counter()
    process = subprocess.Popen(_train_args(settings, run, 1), env=_env(), cwd=ROOT,
                               stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    assert process.stderr is not None
    line = process.stderr.readline()
    while "interrupted" in line:  # notices about the runs this benchmark killed come first
        line = process.stderr.readline()
    elapsed, cpu = time.perf_counter() - started, _cpu_seconds(process.pid)
    process.kill()
    process.wait()
    if "split" not in line:
        raise RuntimeError(f"ctae train's first line is not its split: {line!r}")
    return elapsed, cpu


def train_speed(settings: CatalogSettings, run: str, epochs: int, *extra: str) -> float:
    """Volumes/s of ``ctae train`` over its epochs after the first (median)."""
    subprocess.run(_train_args(settings, run, epochs, *extra), env=_env(), cwd=ROOT, check=True,
                   capture_output=True)
    with connect(settings.catalog_path, read_only=True) as con:
        history = train_history(con, run)
    return statistics.median(h["volumes_per_s"] for h in history[1:])


def under_load(settings: CatalogSettings, run: str, epochs: int, *extra: str) -> float:
    """``train_speed`` while one single-threaded busy process runs."""
    busy = subprocess.Popen([sys.executable, "-c", BUSY])
    try:
        time.sleep(1.0)  # let it show up in /proc/loadavg's runnable count
        return train_speed(settings, run, epochs, *extra)
    finally:
        busy.kill()
        busy.wait()


def main(quick: bool = False) -> list[dict]:
    """Benchmark rows for benchmarks/run_all.py."""
    repeats, epochs = (3, 3) if quick else (7, 4)
    cores = len(os.sched_getaffinity(0))
    rows = []
    help_s = help_seconds(repeats)
    rows.append(row("cli", "ctae --help, wall (baseline: python -c pass)", help_s["wall"], "s",
                     HELP_TARGET_S, help_s["bare_wall"], help_s["wall"] / HELP_TARGET_S))
    rows.append(row("cli", "ctae --help, CPU time (baseline: python -c pass)", help_s["cpu"], "s",
                     HELP_TARGET_S, help_s["bare_cpu"], help_s["cpu"] / HELP_TARGET_S))
    settings = cohort()
    firsts = [first_progress_seconds(settings, f"first{i}") for i in range(repeats)]
    for i, kind in enumerate(("wall", "CPU time")):
        first = statistics.median(f[i] for f in firsts)
        rows.append(row("cli", f"ctae train: first progress line, {kind}", first, "s",
                         FIRST_PROGRESS_TARGET_S, None, first / FIRST_PROGRESS_TARGET_S))
    idle = train_speed(settings, "idle", epochs)
    loaded = under_load(settings, "loaded", epochs)
    greedy = under_load(settings, "greedy", epochs, "--threads", str(cores))
    rows.append(row("cli", "ctae train tiny, idle machine", idle, "vol/s"))
    rows.append(row("cli", "ctae train tiny, one busy process (free-core threads)", loaded, "vol/s",
                     UNDER_LOAD_TARGET, idle, loaded / idle))
    rows.append(row("cli", f"ctae train tiny, one busy process (--threads {cores})", greedy, "vol/s",
                     UNDER_LOAD_TARGET, idle, greedy / idle))
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 repeats, 3 epochs per training")
    args = parser.parse_args()
    print(f"load average before: {Path('/proc/loadavg').read_text().strip()}", file=sys.stderr)
    for row in main(args.quick):
        print(json.dumps(row))
    print(f"load average after: {Path('/proc/loadavg').read_text().strip()}", file=sys.stderr)
