"""Where a `ctae ingest` process spends its time, phase by phase, in CPU and wall seconds.

    .venv/bin/python benchmarks/bench_ingest_phases.py [--repeats N] [--against CHECKOUT]

Runs `python -m jobs ingest TREE --no-progress` on one and on six copies of the real chest
series (bench_user.py's trees, fresh catalog each time) with a phase timer around the job's
functions, in the parent and in its forked workers, and prints per phase the CPU seconds (robust
under load), the wall seconds and the calls, summed over processes; "interpreter + imports" is
the parent's CPU and wall before the job starts. Then the catalog's cost: connections opened,
and (where `strace` exists) fsync / fdatasync calls of the whole process tree. ``--against``
runs an earlier checkout the same way, interleaved (phases it lacks print as 0).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out" / "user"
PHASES = {
    "catalog: open a connection": ("data_catalog.connection", "_open"),
    "catalog: create / migrate": ("data_catalog.connection", "ensure_schema"),
    "catalog: job record, fingerprints": ("jobs.runtime", "start_job_run"),
    "catalog: write scans and errors": ("data_catalog.scans", "upsert_scans"),
    "discovery (parent, whole tree)": ("ctae_core.io.sources", "discover_sources"),
    "discovery (a folder, in a worker)": ("ctae_core.io.sources", "discover_folder"),
    "readers imported before the pool forks": ("jobs.ingest_worker", "load_readers"),
    "decode (read + HU + stack)": ("ctae_core.io.dicom_series", "read_dicom_series"),
    "resample to 3 mm (SimpleITK)": ("ctae_core.io.resample", "resample_isotropic"),
    "metal measure (acquired grid)": ("ctae_core.native_metal", "native_metal_mm3"),
    "statistics": ("ctae_core.stats", "scan_statistics"),
    "store the volume": ("ctae_core.io.volume_store", "save_volume"),
}
"""Phase -> (module, function); a function another module imported by name is wrapped there too."""

CHILD = """
import functools, importlib, json, os, sys, time
started = float(os.environ["PHASES_T0"])
out = open(os.environ["PHASES_OUT"], "a", buffering=1)
phases = json.loads(os.environ["PHASES"])
def record(name, wall0, cpu0):
    out.write(json.dumps([os.getpid(), name, time.perf_counter() - wall0,
                          time.process_time() - cpu0, wall0 - started]) + "\\n")
def wrap(name, module, function):
    try:
        mod = importlib.import_module(module)
        real = getattr(mod, function)
    except (ImportError, AttributeError):
        return None
    @functools.wraps(real)
    def timed(*args, **kwargs):
        wall0, cpu0 = time.perf_counter(), time.process_time()
        try:
            return real(*args, **kwargs)
        finally:
            record(name, wall0, cpu0)
    setattr(mod, function, timed)
    return real, timed
import jobs.launch as launch
function = launch.command_function("ingest")
record("interpreter + imports (to the job)", started, 0.0)
wrapped = [w for n, (m, f) in phases.items() if (w := wrap(n, m, f))]
for mod in list(sys.modules.values()):  # names imported with `from module import function`
    for real, timed in wrapped:
        for key, value in list(getattr(mod, "__dict__", {}).items()):
            if value is real:
                setattr(mod, key, timed)
wall0, cpu0 = time.perf_counter(), time.process_time()
try:
    function(**launch.fast_arguments(function, sys.argv[1:]))
finally:
    record("the job (parent, all of it)", wall0, cpu0)
"""


def run(root: Path, tree: Path, catalog: Path, strace: bool) -> tuple[dict, float, int | None]:
    """Phase records of one ingest process tree, its wall seconds and its fsync count."""
    shutil.rmtree(catalog.parent, ignore_errors=True)
    catalog.parent.mkdir(parents=True)
    records = catalog.parent / "phases.jsonl"
    env = {**os.environ, "PYTHONPATH": str(root), "PHASES_OUT": str(records),
           "PHASES": json.dumps(PHASES)}  # fmt: skip
    command = [sys.executable, "-c", CHILD, str(tree), "--catalog", str(catalog), "--no-progress"]
    started = time.perf_counter()  # CLOCK_MONOTONIC: the child's perf_counter reads the same
    env["PHASES_T0"] = str(started)
    subprocess.run(command, env=env, cwd=root, check=True, capture_output=True)
    wall = time.perf_counter() - started
    phases: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0])
    for line in records.read_text().splitlines():
        _pid, name, w, c, _ = json.loads(line)
        phases[name][0] += c
        phases[name][1] += w
        phases[name][2] += 1
    fsyncs = _fsyncs(root, tree, catalog) if strace else None
    return dict(phases), wall, fsyncs


def _fsyncs(root: Path, tree: Path, catalog: Path) -> int:
    """fsync + fdatasync calls of a whole `ctae ingest` process tree (strace -f -c)."""
    shutil.rmtree(catalog.parent, ignore_errors=True)
    with tempfile.NamedTemporaryFile("r", suffix=".txt") as summary:
        subprocess.run(["strace", "-f", "-c", "-o", summary.name, "-e", "trace=fsync,fdatasync",
                        sys.executable, "-m", "jobs", "ingest", str(tree), "--catalog",
                        str(catalog), "--no-progress"], cwd=root, check=True, capture_output=True,
                       env={**os.environ, "PYTHONPATH": str(root)})  # fmt: skip
        calls = 0
        for line in Path(summary.name).read_text().splitlines():
            parts = line.split()
            if parts and parts[-1] in ("fsync", "fdatasync"):
                calls += int(parts[3])
    return calls


def main(repeats: int, against: Path | None) -> None:
    sys.path.insert(0, str(ROOT))
    from benchmarks.bench_user import chest_tree

    trees = {"one": chest_tree(OUT / "chest-x1", 1), "six": chest_tree(OUT / "chest-x6", 6)}
    builds = {"this build": ROOT} | ({str(against): against} if against else {})
    strace = shutil.which("strace") is not None
    results: dict[tuple[str, str], list] = defaultdict(list)
    loads = [os.getloadavg()[0]]
    for repeat in range(repeats):
        for tree_name, tree in trees.items():
            for build, root in builds.items():
                scratch = OUT / "phases" / build.replace("/", "_") / "catalog.duckdb"
                once = strace and repeat == 0  # the fsync count does not vary
                results[(tree_name, build)].append(run(root, tree, scratch, once))
        loads.append(os.getloadavg()[0])
    print(
        f"load average (1 min) during the runs: {min(loads):.1f}-{max(loads):.1f}; "
        f"medians of {repeats}; CPU / wall seconds summed over the parent and its workers"
    )
    for (tree_name, build), runs in results.items():
        walls = [wall for _, wall, _ in runs]
        fsyncs = next((f for _, _, f in runs if f is not None), None)
        print(
            f"\n{tree_name} series, {build}: process wall {statistics.median(walls):.3f} s"
            + (f", {fsyncs} fsync/fdatasync calls" if fsyncs is not None else "")
        )
        names = sorted({n for phases, _, _ in runs for n in phases})
        for name in names:
            cpu = statistics.median(p.get(name, [0, 0, 0])[0] for p, _, _ in runs)
            wall = statistics.median(p.get(name, [0, 0, 0])[1] for p, _, _ in runs)
            calls = statistics.median(p.get(name, [0, 0, 0])[2] for p, _, _ in runs)
            print(f"  {name:42s} CPU {cpu:6.3f}  wall {wall:6.3f}  calls {calls:4.0f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--against", type=Path, help="an earlier checkout, run interleaved")
    args = parser.parse_args()
    main(args.repeats, args.against)
