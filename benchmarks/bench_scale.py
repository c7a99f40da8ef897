"""Scale-out figures: ingest and score throughput on 1 vs 2 local workers, and the dashboard's
catalog queries on a synthetic 1,000,000-scan catalog.

Figures (each with a baseline measured in the same run):
- ingest series/s with 2 worker processes — baseline: 1 worker (inline); ratio = speed-up;
- score scans/s with 2 worker processes (1 torch thread each) — baseline: 1 worker (this
  process, torch on every core); ratio = speed-up;
- explorer query (``views.explorer_scans``; also with every cluster), the full scan table the
  explorer read before, run info, review summary and counts at 1M scans (target < 1 s)
  — baseline: the same query at 100k scans; ratio = growth for 10× the rows.
With ``--ray`` (Ray installed) a row is added: ingest on a local 2-CPU Ray instance against the
same 1-worker baseline, with Ray's start-up and one warm-up pass (worker imports) excluded.

Run: ``.venv/bin/python benchmarks/bench_scale.py [--quick] [--ray]``; outputs go to
benchmarks/out/scale/. On a 2-core machine shared with other work, 2 workers cannot beat 2×.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from benchmarks.rows import row  # noqa: E402
from ctae_core.io.dicom_writer import SeriesHeaderSpec, write_series  # noqa: E402
from ctae_core.phantoms import torso  # noqa: E402
from data_catalog import CatalogSettings, connect, views  # noqa: E402
from jobs.executors import ExecutorConfig  # noqa: E402
from jobs.synthetic_catalog import SyntheticSpec, build_synthetic_catalog  # noqa: E402

OUT = ROOT / "benchmarks" / "out" / "scale"
RUN = "synthetic"


def _fresh(name: str) -> CatalogSettings:
    shutil.rmtree(OUT / name, ignore_errors=True)
    settings = CatalogSettings.resolve(OUT / name / "catalog.duckdb", OUT / name / "store", env={})
    with connect(settings.catalog_path):
        pass
    return settings


def make_inputs(n_series: int, shape_zyx: tuple[int, int, int]) -> Path:
    """``n_series`` DICOM series of phantom bodies (2.0 × 0.7 × 0.7 mm slices)."""
    root = OUT / f"inputs_{n_series}x{'x'.join(map(str, shape_zyx))}"
    if (root / "done").exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    for i in range(n_series):
        hu = torso(shape_zyx, np.random.default_rng(i), metal=i % 5 == 4)
        write_series(
            hu,
            (2.0, 0.7, 0.7),
            root / f"series{i:03d}",
            header=SeriesHeaderSpec(series_uid=f"1.2.826.0.1.3680043.99.{i + 1}"),
        )
    (root / "done").touch()
    return root


def bench_ingest(inputs: Path, use_ray: bool) -> tuple[list[dict], CatalogSettings]:
    """Ingest the same inputs with 1 worker, then 2 (and Ray); returns rows and the last catalog."""
    from jobs.ingest import run_ingest

    rates: dict[str, float] = {}
    configs = {"1 worker": ExecutorConfig(workers=1), "2 workers": ExecutorConfig(workers=2)}
    if use_ray:
        configs["Ray, 2 CPUs"] = _start_ray()
    for name, config in configs.items():
        settings = _fresh(f"ingest_{name.split()[0].strip(',').lower()}")
        if config.kind == "ray":  # warm the Ray workers (imports) first: steady-state figure
            run_ingest([inputs], _fresh("ingest_ray_warmup"), progress=False, executor=config)
        summary = run_ingest([inputs], settings, progress=False, executor=config)
        if summary.ingested != summary.found:
            raise RuntimeError(f"ingest with {name} stored {summary.ingested} of {summary.found}")
        rates[name] = summary.ingested / summary.seconds
        print(
            f"ingest, {name}: {summary.ingested} series in {summary.seconds:.2f} s "
            f"= {rates[name]:.2f} series/s"
        )
    base = rates.pop("1 worker")
    rows = [
        row("scale", f"ingest throughput, {name} vs 1 worker", rate, "series/s", None, base)
        for name, rate in rates.items()
    ]
    return rows, settings


def _start_ray() -> ExecutorConfig:
    import ray

    started = time.perf_counter()
    ray.init(
        num_cpus=2, include_dashboard=False, object_store_memory=200 * 1024**2, log_to_driver=False
    )
    print(f"Ray started in {time.perf_counter() - started:.1f} s (not counted)")
    return ExecutorConfig(kind="ray")


def bench_score(settings: CatalogSettings) -> list[dict]:
    """Train a 1-epoch tiny run on the ingested scans, then score them with 1 and 2 workers."""
    from jobs.score import ScoreOptions, run_score
    from jobs.train import build_config, run_training

    run_training(settings, "bench", build_config("tiny", epochs=1), device="cpu", progress=False)
    rates = {}
    for workers in (1, 2):
        options = ScoreOptions(
            run_id="bench",
            device="cpu",
            overwrite=True,
            show_progress=False,
            workers=workers,
            keep_volumes="all",
        )
        started = time.perf_counter()
        counts = run_score(settings, options)
        seconds = time.perf_counter() - started
        rates[workers] = counts["scored"] / seconds
        print(
            f"score, {workers} worker(s): {counts['scored']} scans in {seconds:.2f} s "
            f"= {rates[workers]:.2f} scans/s"
        )
    return [row("scale", "score throughput, 2 workers vs 1", rates[2], "scans/s", None, rates[1])]


QUERIES = {
    # what the explorer reads on first render (colour by flag): its columns only, unsorted
    "explorer scans (explorer columns, Arrow → pandas)": lambda con: views.explorer_scans(con, RUN),
    # the same after "colour by cluster": every scan's cluster joined too
    "explorer scans, colour by cluster": lambda con: views.explorer_scans(
        con, RUN, all_clusters=True
    ),
    # before: the explorer read the whole sorted scan table (paths, UIDs); export/viewer still do
    "full scan table (all columns, sorted; the explorer's old read)": lambda con: views.scan_table(
        con, RUN
    ),
    "run info": lambda con: views.run_info(con, RUN),
    "review summary": lambda con: views.review_summary(con, RUN),
    "catalog counts": lambda con: views.catalog_counts(con),
}


def _time_queries(settings: CatalogSettings, repeats: int) -> dict[str, float]:
    """Median seconds of each dashboard query, each on its own short read-only connection."""
    out = {}
    for name, query in QUERIES.items():
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            with connect(settings.catalog_path, read_only=True) as con:
                query(con)
            times.append(time.perf_counter() - started)
        out[name] = statistics.median(times)
    return out


def bench_catalog(n_big: int, repeats: int) -> list[dict]:
    """Dashboard queries on ``n_big`` synthetic scans vs the same on ``n_big // 10``."""
    timings = {}
    for n in (n_big // 10, n_big):
        settings = _fresh(f"catalog_{n}")
        started = time.perf_counter()
        build_synthetic_catalog(settings, SyntheticSpec(n_scans=n, n_volume_files=0))
        print(f"built a {n:,}-scan synthetic catalog in {time.perf_counter() - started:.1f} s")
        timings[n] = _time_queries(settings, repeats)
        for name, seconds in timings[n].items():
            print(f"  {n:>9,} scans  {name}: {seconds * 1000:.0f} ms")
    small = n_big // 10
    return [
        row("scale",
            f"{name}, {n_big:,} scans (vs {small:,})",
            timings[n_big][name],
            "s",
            1.0,
            timings[small][name],
        )
        for name in QUERIES
    ]


def main(quick: bool = False, use_ray: bool = False) -> list[dict]:
    """Run every figure; ``quick`` uses fewer and smaller series (same 1M-scan catalog)."""
    logging.basicConfig(level=logging.WARNING)
    OUT.mkdir(parents=True, exist_ok=True)
    print(f"{os.cpu_count()} CPU core(s)")
    n_series, shape = (8, (64, 384, 384)) if quick else (16, (160, 512, 512))
    inputs = make_inputs(n_series, shape)
    rows, settings = bench_ingest(inputs, use_ray)
    rows += bench_score(settings)
    rows += bench_catalog(1_000_000, repeats=2 if quick else 5)
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller inputs, < 60 s")
    parser.add_argument("--ray", action="store_true", help="also ingest on a local Ray instance")
    args = parser.parse_args()
    for row in main(args.quick, args.ray):
        print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()})
