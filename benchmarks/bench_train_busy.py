"""`tiny` training beside one busy single-threaded process, as users meet it, per thread setting.

    .venv/bin/python benchmarks/bench_train_busy.py [--epochs N] [--repeats N]

Trains `python -m jobs train --preset tiny` on bench_user.py's synthetic cohort with 1 thread,
2 threads, and two CPU DDP ranks × 1 thread (torchrun, gloo), each idle, beside a busy process
started in another session (`setsid`: what another terminal is, and with
/proc/sys/kernel/sched_autogroup_enabled = 1 its own scheduling group, which then gets half the
CPU whatever our thread count), and beside one started in this session (one task among ours).
Prints the median volumes/s of the epochs after the first and the ratio to the idle default
(2 threads on 2 cores), settings interleaved round by round.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out" / "train-busy"
PYTHON = sys.executable
SETTINGS = {"1 thread": ["--threads", "1"], "2 threads": ["--threads", "2"], "DDP 2 x 1": None}
BUSY = {"idle": None, "busy, another session": True, "busy, this session": False}


def _cohort() -> Path:
    sys.path.insert(0, str(ROOT))
    from data_catalog import CatalogSettings
    from jobs.synthetic_catalog import SyntheticSpec, build_synthetic_catalog

    shutil.rmtree(OUT, ignore_errors=True)
    settings = CatalogSettings.resolve(OUT / "catalog.duckdb", OUT / "store", env={})
    spec = SyntheticSpec(n_scans=40, run_id=None, n_volume_files=8, shape_zyx=(48, 80, 80))
    build_synthetic_catalog(settings, spec)
    return settings.catalog_path


def _train(catalog: Path, run: str, setting: list[str] | None, epochs: int) -> float:
    """Median volumes/s over the epochs after the first, as `ctae train` records them."""
    import duckdb

    args = ["--preset", "tiny", "--epochs", str(epochs), "--catalog", str(catalog),
            "--no-progress", "--device", "cpu"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if setting is None:  # two ranks, one thread each: half of tiny's batch of 8 per rank
        env["OMP_NUM_THREADS"] = "1"
        command = [PYTHON, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                   "-m", "jobs.train", "--run-name", run, "--batch-size", "4", *args]  # fmt: skip
    else:
        command = [PYTHON, "-m", "jobs", "train", "--run", run, *args, *setting]
    subprocess.run(command, env=env, cwd=ROOT, check=True, capture_output=True)
    with duckdb.connect(str(catalog), read_only=True) as con:
        rates = [r[0] for r in con.execute(
            "SELECT volumes_per_s FROM train_history WHERE run_id = ? AND epoch > 1", [run]
        ).fetchall()]  # fmt: skip
    return statistics.median(rates)


BUSY_LOOP = "import os\nparent = os.getppid()\nwhile os.getppid() == parent:\n    for _ in range(10**6): pass"
"""A busy single-threaded process that ends with this benchmark even when the benchmark is
killed (in its own session, a kill of the benchmark's process group does not reach it)."""


def main(epochs: int, repeats: int) -> None:
    catalog = _cohort()
    rates: dict[tuple[str, str], list[float]] = defaultdict(list)
    loads = [os.getloadavg()[0]]
    for round_ in range(repeats):
        for busy_name, new_session in BUSY.items():
            busy = None
            if new_session is not None:
                busy = subprocess.Popen([PYTHON, "-c", BUSY_LOOP],
                                        start_new_session=new_session)  # fmt: skip
            try:
                for name, setting in SETTINGS.items():
                    run = f"r{round_}-{busy_name}-{name}".replace(" ", "_").replace(",", "")
                    rates[(busy_name, name)].append(_train(catalog, run, setting, epochs))
                    print(
                        f"  {busy_name}, {name}: {rates[(busy_name, name)][-1]:.2f} vol/s "
                        f"(load {os.getloadavg()[0]:.1f})",
                        flush=True,
                    )
            finally:
                if busy is not None:
                    busy.kill()
                    busy.wait()
            loads.append(os.getloadavg()[0])
    idle = statistics.median(rates[("idle", "2 threads")])
    print(
        f"load average (1 min) during the runs: {min(loads):.1f}-{max(loads):.1f}; "
        f"autogroup: {Path('/proc/sys/kernel/sched_autogroup_enabled').read_text().strip()}; "
        f"medians of {repeats} run(s) x {epochs - 1} epoch(s)"
    )
    for (busy_name, name), values in rates.items():
        value = statistics.median(values)
        print(
            f"  {busy_name:24s} {name:10s} {value:6.2f} vol/s  {value / idle:5.2f}x idle 2 threads"
            f"  (runs: {', '.join(f'{v:.2f}' for v in values)})"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    main(args.epochs, args.repeats)
