"""`ctae demo-data OUT`: the synthetic demo cohort as DICOM series plus ``ground_truth.csv``.

Each scan is rendered by :mod:`ctae_core.phantoms` and written by
``ctae_core.io.dicom_writer.write_series`` into ``OUT/scan_NNNN/``. A finished series leaves a
marker ``OUT/.demo-data/scan_NNNN.json`` holding its spec (written as incomplete before the
first file, complete after the last); a re-run skips every series whose complete marker matches
its spec and rewrites the rest (also those a killed run left half written). A series folder
without a marker is not ours: the job refuses to overwrite it.
``OUT/ground_truth.csv`` (columns ``series_uid,source_path,truth,strength,mask_path``) is written
last; each local outlier (metal, a cable) has a voxel mask of the object in the series' own grid
and patient coordinates, ``OUT/.masks/scan_NNNN.nii.gz`` (hidden: ingest passes it over).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from jobs.cohort_files import (
    TRUTH_COLUMNS,
    claim_series,
    is_complete,
    marker_path,
    remove_stale,
    series_uid_for,
    write_truth_file,
)
from jobs.job_errors import stop
from jobs.options import NoProgressOption, refuse_file_in_the_way

logger = logging.getLogger(__name__)

PHANTOM_TRUTH_COLUMNS = (*TRUTH_COLUMNS, "mask_path")
MASK_DIR = ".masks"
"""Hidden, so that `ctae ingest OUT` passes the masks over (they are not scans)."""


def local_types() -> frozenset[str]:
    """The phantom outlier types that are an object with a place (metal, a cable)."""
    from ctae_core.phantoms.outliers import METAL_TYPES

    return METAL_TYPES | {"external_cable"}


def _mask_path(spec: Any) -> str:
    return f"{MASK_DIR}/{spec.source_path}.nii.gz" if spec.truth in local_types() else ""

def write_scan(out: Path, spec: Any) -> dict[str, Any]:
    """Render ``spec`` and write it as one DICOM series; returns what the marker records."""
    from ctae_core.io.dicom_writer import SeriesHeaderSpec, write_series
    from ctae_core.phantoms import render_spec
    from ctae_core.phantoms.identity import series_header

    started = time.perf_counter()
    folder = claim_series(out, spec)
    phantom = render_spec(spec)
    fov_mm = phantom.hu.shape[2] * phantom.spacing_zyx_mm[2]
    fields, style = series_header(spec.rng(2), phantom.spacing_zyx_mm, fov_mm)
    uid = series_uid_for(spec)
    offset = phantom.effects.intercept_offset_hu
    paths = write_series(
        phantom.hu.astype("float32") + offset,  # with the intercept below: same stored pixels
        phantom.spacing_zyx_mm,
        folder,
        header=SeriesHeaderSpec(series_uid=uid, **fields),
        origin_xyz_mm=phantom.origin_xyz_mm,
        rescale_intercept=style.rescale_intercept + offset,
        reverse_order=spec.reversed_order,
        file_suffix=style.file_suffix,
        shuffle_names=style.shuffle_names,
        seed=spec.index,
    )
    for plane in phantom.effects.dropped_planes:
        paths[plane].unlink()
    if _mask_path(spec):
        from ctae_core.io.mask_files import write_mask
        from ctae_core.phantoms.tissues import Tissue

        mask = np.isin(phantom.labels, (Tissue.METAL, Tissue.FOREIGN))
        write_mask(mask, phantom.spacing_zyx_mm, phantom.origin_xyz_mm, out / _mask_path(spec))
    record = {
        "spec": asdict(spec),
        "complete": True,
        "series_uid": uid,
        "files": len(paths) - len(phantom.effects.dropped_planes),
        "shape_zyx": list(phantom.hu.shape),
        "seconds": time.perf_counter() - started,
    }
    marker_path(out, spec).write_text(json.dumps(record))
    return record


def write_ground_truth(out: Path, specs: list[Any]) -> Path:
    """``OUT/ground_truth.csv`` for every spec."""
    rows = ([series_uid_for(s), s.source_path, s.truth, s.strength, _mask_path(s)] for s in specs)
    return write_truth_file(out, PHANTOM_TRUTH_COLUMNS, rows)


def generate_cohort(
    out: Path,
    n: int,
    seed: int,
    outlier_rate: float,
    size: str,
    workers: int | None,
    progress: bool = True,
) -> dict[str, int]:
    """Write the cohort; returns counts ``written``, ``skipped``, ``failed``, ``removed``."""
    from tqdm import tqdm

    from ctae_core.phantoms import plan_cohort
    from jobs.executors import ExecutorConfig, map_tasks

    specs = plan_cohort(n, seed, outlier_rate, size)
    out.mkdir(parents=True, exist_ok=True)
    removed = remove_stale(out, {s.source_path for s in specs})
    todo = [s for s in specs if not is_complete(out, s)]
    failed = 0
    results = map_tasks(partial(write_scan, out), todo, ExecutorConfig(workers=workers))
    for result in tqdm(results, total=len(todo), unit="scan", disable=not progress):
        if not result.ok:
            failed += 1
            logger.error("scan=%s error=%s", result.item.source_path, result.error)
    write_ground_truth(out, specs)
    counts = {
        "written": len(todo) - failed,
        "skipped": len(specs) - len(todo),
        "failed": failed,
        "removed": removed,
    }
    logger.info("demo cohort out=%s %s", out, " ".join(f"{k}={v}" for k, v in counts.items()))
    return counts


def demo_data(
    out: Annotated[Path, typer.Argument(help="Folder for the series and ground_truth.csv.")],
    n: Annotated[int, typer.Option("--n", help="Number of scans.")] = 400,
    seed: Annotated[int, typer.Option(help="Cohort seed: same seed, same cohort.")] = 0,
    outlier_rate: Annotated[float, typer.Option(help="Fraction of planted outliers.")] = 0.05,
    workers: Annotated[int | None, typer.Option(help="Processes (default: CPU count).")] = None,
    size: Annotated[
        str,
        typer.Option(
            help="demo: 1.6-3.6 mm pixels, 2.5-3 mm slices (~2.4 MB a scan); full: the scanner's "
            "0.35-0.8 mm / 0.5-3 mm (up to ~130 M voxels and ~2.3 GB RAM per worker)."
        ),
    ] = "demo",
    base: Annotated[
        str | None,
        typer.Option(
            help="Build the real-anatomy cohort instead: 'real' (the shared real-ct and "
            "real-ct-anatomy folders) or a folder of CT series / volumes. Chest and abdomen "
            "volumes become inliers; anomalies are inserted with voxel masks (OUT/.masks/)."
        ),
    ] = None,
    no_progress: NoProgressOption = False,
) -> None:
    """Write a cohort with planted outliers as DICOM series: synthetic CCTA or, with --base, real anatomy.

    Resumable: a re-run skips the series it finished."""
    from ctae_core.phantoms import SIZES

    refuse_file_in_the_way(out, "OUT")
    if size not in SIZES:
        raise typer.BadParameter(f"--size must be one of {sorted(SIZES)}, not {size!r}")
    if n < 1 or not 0.0 <= outlier_rate <= 1.0:
        raise typer.BadParameter(
            f"need --n >= 1 and 0 <= --outlier-rate <= 1 (got {n}, {outlier_rate})"
        )
    if workers is not None and workers < 1:  # a traceback after the bases were read until stop 56
        raise typer.BadParameter(f"--workers must be >= 1, not {workers}")
    started = time.monotonic()
    if base is not None:
        from jobs.demo_data_real import generate_real_cohort

        try:
            counts = generate_real_cohort(out, base, n, seed, outlier_rate, workers,
                                          progress=not no_progress)
        except (FileNotFoundError, ValueError) as err:
            raise stop("demo-data", err) from err
    else:
        counts = generate_cohort(out, n, seed, outlier_rate, size, workers,
                                 progress=not no_progress)
    typer.echo(
        f"{out}: {counts['written']} written, {counts['skipped']} already complete, "
        f"{counts['failed']} failed in {time.monotonic() - started:.1f} s"
    )
    if counts["failed"]:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add ``ctae demo-data`` to the CLI."""
    app.command("demo-data")(demo_data)
