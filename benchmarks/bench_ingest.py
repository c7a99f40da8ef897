"""Ingest speed: ctae (discover + read + HU + resample to 3 mm + stats + store) against
dcm2niix converting the same DICOM series to NIfTI, timed in the same run, interleaved.

    .venv/bin/python benchmarks/bench_ingest.py [--quick]

Target (issue 2): ctae's time per series at most 1.5x dcm2niix's. Each figure is the best of
``repeats`` interleaved runs (the machine is shared; the minimum is the least disturbed one).
Outputs go to benchmarks/out/ingest/.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.rows import row as _row  # noqa: E402
from ctae_core.io.dicom_writer import write_series  # noqa: E402
from ctae_core.io.sources import discover_sources  # noqa: E402
from data_catalog import CatalogSettings  # noqa: E402
from jobs.ingest import run_ingest  # noqa: E402
from jobs.ingest_worker import ingest_one  # noqa: E402

OUT = ROOT / "benchmarks" / "out" / "ingest"
SHARED = ROOT.parent / "shared" / "data" / "real-ct"
REAL_SERIES = [
    "dlwpt-cptac-lscc-chest/volumetric-dicom/2-LUNG 3.0  B70f-04083",
    "totalseg-example/example_ct_dicom",
    "dcm_qa_ct/In/GE",
]
TARGET_RATIO = 1.5


def synthetic_series(n_slices: int) -> Path:
    """A 512×512×n body-like series at 0.7×0.7×1 mm (written once, reused)."""
    folder = OUT / f"synthetic_512x512x{n_slices}"
    if folder.is_dir() and len(list(folder.glob("*.dcm"))) == n_slices:
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    z, y, x = np.ogrid[:n_slices, :512, :512]
    hu = np.full((n_slices, 512, 512), -1000, dtype=np.int16)
    hu[((y - 256) / 200.0) ** 2 + ((x - 256) / 240.0) ** 2 <= 1 + 0 * z] = 40
    hu[((y - 300) / 30.0) ** 2 + ((x - 256) / 30.0) ** 2 <= 1 + 0 * z] = 700
    hu += np.random.RandomState(0).normal(0, 10, (1, 512, 512)).astype(np.int16)
    write_series(hu, (1.0, 0.7, 0.7), folder)
    return folder


def time_ctae(folder: Path, store: Path) -> tuple[float, float]:
    """(wall, CPU) seconds to discover and ingest the one series in ``folder``."""
    start, cpu = time.perf_counter(), time.process_time()
    sources = discover_sources([folder]).sources
    outcomes = [ingest_one(s, store, 3.0) for s in sources]
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    errors = [o.error.message for o in outcomes if o.error is not None]
    if errors or len(outcomes) != 1:
        raise RuntimeError(f"{folder}: expected one ingested series, got {errors or outcomes}")
    return elapsed, cpu


def time_dcm2niix(exe: str, folder: Path, out: Path) -> tuple[float, float]:
    """(wall, CPU) seconds of dcm2niix converting ``folder`` to an uncompressed NIfTI."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(
        [exe, "-z", "n", "-b", "n", "-o", str(out), "-f", "s", str(folder)],
        check=True,
        capture_output=True,
    )
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return elapsed, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def compare(name: str, folder: Path, exe: str, repeats: int, scratch: Path) -> list[dict]:
    """Best-of-``repeats`` wall and CPU seconds per series for both tools, interleaved.

    CPU seconds matter on a shared machine: they do not count time spent waiting for a core.
    """
    time_ctae(folder, scratch / "warm")  # imports and caches, not part of the figure
    ctae_runs, d2n_runs = [], []
    for _ in range(repeats):
        ctae_runs.append(time_ctae(folder, scratch / "store"))
        d2n_runs.append(time_dcm2niix(exe, folder, scratch / "d2n"))
    ctae, d2n = min(r[0] for r in ctae_runs), min(r[0] for r in d2n_runs)
    ctae_cpu, d2n_cpu = min(r[1] for r in ctae_runs), min(r[1] for r in d2n_runs)
    megabytes = sum(p.stat().st_size for p in folder.iterdir() if p.is_file()) / 1e6
    target = f"<= {TARGET_RATIO}x dcm2niix"
    return [
        _row(f"ingest {name}", "s per series", ctae, "s", target, d2n),
        _row(f"ingest {name}", "CPU s per series", ctae_cpu, "s", target, d2n_cpu),
        _row(f"ingest {name}", "MB/s", megabytes / ctae, "MB/s", "", megabytes / d2n),
    ]


def stages(name: str, folder: Path, repeats: int, scratch: Path) -> list[dict]:
    """Where ctae's time per series goes (best of ``repeats``), to see what to speed up next."""
    from ctae_core.io.dicom_series import read_dicom_series
    from ctae_core.io.resample import resample_isotropic
    from ctae_core.io.volume_store import save_volume
    from ctae_core.stats import scan_statistics

    best: dict[str, float] = {}
    for _ in range(repeats):
        marks = [time.perf_counter()]
        (source,) = discover_sources([folder]).sources
        marks.append(time.perf_counter())
        volume, _ = read_dicom_series(source.files, name, source.headers)
        marks.append(time.perf_counter())
        resampled = resample_isotropic(volume, 3.0)
        del volume
        marks.append(time.perf_counter())
        scan_statistics(resampled.hu, 3.0)
        save_volume(resampled.hu, scratch / "stage.npy")
        marks.append(time.perf_counter())
        for stage, seconds in zip(
            ["discover", "read+HU", "resample", "stats+store"], np.diff(marks), strict=True
        ):
            best[stage] = min(best.get(stage, np.inf), float(seconds))
    return [_row(f"ingest {name} stage", stage, s, "s", "", None) for stage, s in best.items()]


def whole_folder(root: Path, scratch: Path) -> list[dict]:
    """`run_ingest` over every input of the shared data (1 worker, fresh catalog)."""
    settings = CatalogSettings.resolve(scratch / "all.duckdb", scratch / "all-store", env={})
    summary = run_ingest([root], settings, workers=1, progress=False)
    return [
        _row(
            "ingest shared real-ct (all inputs)",
            "series/s",
            summary.found / summary.seconds,
            "series/s",
            "",
            None,
        ),
        _row(
            "ingest shared real-ct (all inputs)",
            "MB/s",
            summary.input_bytes / 1e6 / summary.seconds,
            "MB/s",
            "",
            None,
        ),
    ]


def main(quick: bool) -> list[dict]:
    exe = shutil.which("dcm2niix") or str(Path(sys.executable).with_name("dcm2niix"))
    if not Path(exe).exists():
        raise SystemExit("dcm2niix not found: pip install dcm2niix (the dev extra has it)")
    repeats = 1 if quick else 5
    OUT.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(dir=OUT) as tmp:
        scratch = Path(tmp)
        inputs = [("synthetic 512x512x300", synthetic_series(300))]
        if SHARED.is_dir():
            inputs += [
                (rel.split("/")[0], SHARED / rel) for rel in REAL_SERIES[: 1 if quick else 3]
            ]
        for name, folder in inputs:
            rows += compare(name, folder, exe, repeats, scratch)
        rows += stages(inputs[0][0], inputs[0][1], repeats, scratch)
        if SHARED.is_dir() and not quick:
            rows += whole_folder(SHARED, scratch)
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one repeat, fewer inputs (< 60 s)")
    for row in main(parser.parse_args().quick):
        ratio = (
            ""
            if row["ratio"] is None
            else f"  ratio {row['ratio']:.2f} (baseline {row['baseline']})"
        )
        print(
            f"{row['benchmark']:45s} {row['figure']:13s} {row['value']:10.3f} {row['unit']}{ratio}"
        )
