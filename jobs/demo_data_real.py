"""`ctae demo-data --base real|PATH OUT`: the real-anatomy cohort as DICOM series, with
``ground_truth.csv`` and a NIfTI voxel mask of every local anomaly under ``OUT/masks/``.

Bases are every CT volume ingest would accept under the given folders (``real``: the shared
``real-ct`` and ``real-ct-anatomy`` folders beside the checkout). Chest and abdomen volumes are
the inlier bases; volumes of another body region (head and neck) are only used for the
``wrong_body_region`` anomaly. Each written series keeps its base's manufacturer, model and
kernel. Resumable like the phantom cohort (same markers).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from jobs.cohort_files import (
    claim_series,
    is_complete,
    marker_path,
    remove_stale,
    series_uid_for,
    write_truth_file,
)

logger = logging.getLogger(__name__)

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
REAL_FOLDERS = ("real-ct", "real-ct-anatomy")
TRUTH_COLUMNS = ("series_uid", "source_path", "truth", "strength", "base", "mask_path")
MASK_DIR = ".masks"
"""Hidden, so that `ctae ingest OUT` passes the masks over (they are not scans)."""
CONTRAST_SHARE = 0.25
"""A base whose 150–450 HU share of 0–450 HU voxels reaches this holds contrast-filled blood."""


@dataclass(frozen=True)
class BaseSource:
    """Where a base's voxels come from, and what its header says."""

    kind: str
    files: tuple[str, ...]
    label: str
    manufacturer: str
    model: str
    kernel: str


def resolve_roots(base: str) -> list[Path]:
    """The folders ``--base`` names: ``real`` or a path."""
    if base == "real":
        roots = [SHARED_DATA / name for name in REAL_FOLDERS if (SHARED_DATA / name).is_dir()]
        if not roots:
            raise FileNotFoundError(f"--base real: no {' or '.join(REAL_FOLDERS)} under {SHARED_DATA}; "
                                    "pass --base PATH to a folder of CT volumes instead")
        return roots
    path = Path(base)
    if not path.exists():
        raise FileNotFoundError(f"--base {base}: no such folder; pass a folder of CT series or volumes")
    return [path]


def read_base(source: BaseSource) -> tuple[np.ndarray, tuple[float, float, float]]:
    """A base's HU planes in canonical orientation, and their spacing (Z, Y, X) mm."""
    from ctae_core.io.resample import resample_isotropic
    from ctae_core.real_cohort.pose import canonical_planes

    if source.kind == "dicom":
        from ctae_core.io.dicom_series import read_dicom_series

        volume, _ = read_dicom_series(list(source.files), source.label)
    else:
        from ctae_core.io.volume_files import read_volume_file

        volume, _ = read_volume_file(source.files[0], source.label)
    planes = canonical_planes(volume.hu, volume.spacing_zyx_mm, volume.direction)
    if planes is None:  # oblique or tilted: onto the canonical grid at 1 mm
        iso = resample_isotropic(volume, 1.0)
        return iso.hu.astype(np.float32), iso.spacing_zyx_mm
    return planes[0].astype(np.float32), planes[1]


def find_bases(roots: list[Path]) -> tuple[list[Any], dict[str, BaseSource]]:
    """``BaseVolume`` facts and sources of every usable CT volume under ``roots``."""
    from ctae_core.errors import InvalidSeriesError
    from ctae_core.io.sources import discover_sources
    from ctae_core.real_cohort import BaseVolume, body_region
    from ctae_core.real_cohort.pose import enhanced_blood_share

    found = discover_sources(roots)
    bases, sources = [], {}
    for s in found.sources:
        name = f"{Path(s.source_root).name}/{s.source_path}"
        header = s.headers[0].dataset if s.headers else None
        source = BaseSource(s.kind, tuple(s.files), name,
                            str(getattr(header, "Manufacturer", "") or ""),
                            str(getattr(header, "ManufacturerModelName", "") or ""),
                            "\\".join(_as_list(getattr(header, "ConvolutionKernel", ""))))
        try:
            hu, spacing = read_base(source)
        except InvalidSeriesError as err:
            logger.info("base skipped: %s", err)
            continue
        bases.append(BaseVolume(name, body_region(hu, spacing),
                                enhanced_blood_share(hu) >= CONTRAST_SHARE))
        sources[name] = source
        logger.info("base %s: %s, %s", name, bases[-1].region, "contrast" if bases[-1].contrast else "plain")
    return bases, sources


def _no_trunk(base: str, bases: list[Any]) -> str:
    """Why ``--base`` gives no cohort: what it holds instead of a chest or abdomen volume."""
    if not bases:
        found = ("found no CT series or volume there (ctae reads DICOM series and NIfTI / MHA / "
                 "NRRD files; unpack an archive first)")
    else:
        shown = ", ".join(f"{b.name} ({b.region})" for b in bases[:4])
        found = f"found {len(bases)} CT volume(s), none a chest or abdomen: {shown}" + (
            ", …" if len(bases) > 4 else "")
    return (f"--base {base}: a real-anatomy cohort needs at least one chest or abdomen volume as "
            f"a base; {found}")


def _as_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value] if value else []
    return [str(v) for v in value] if value is not None else []


def write_real_scan(out: Path, sources: dict[str, BaseSource], spec: Any) -> dict[str, Any]:
    """Render one spec of the real-anatomy cohort and write it as a DICOM series (+ mask)."""
    from ctae_core.io.dicom_writer import SeriesHeaderSpec, write_series
    from ctae_core.io.mask_files import write_mask
    from ctae_core.real_cohort import INLIER, insert_anomaly, render_variant

    started = time.perf_counter()
    folder = claim_series(out, spec)
    source = sources[spec.base]
    base_hu, base_spacing = read_base(source)
    variant = render_variant(base_hu, base_spacing, spec.rng(0))
    del base_hu
    hu, spacing = variant.hu, variant.spacing_zyx_mm
    inserted = insert_anomaly(spec.truth, hu, spacing, spec.rng(1), spec.strength) \
        if spec.truth != INLIER else None
    origin = (-(hu.shape[2] - 1) / 2 * spacing[2], -(hu.shape[1] - 1) / 2 * spacing[1], 0.0)
    kernel = [k for k in source.kernel.split("\\") if k] or [""]
    header = SeriesHeaderSpec(
        series_uid=series_uid_for(spec), manufacturer=source.manufacturer, model=source.model,
        kernel=kernel[0], slice_thickness_mm=spacing[0],
        extra={"ConvolutionKernel": kernel if len(kernel) > 1 else kernel[0]},
    )
    error = inserted.intercept_error_hu if inserted else 0.0
    # a wrong intercept in the header: stored pixels stay the true HU + 1024, read as HU + error
    stored_hu = np.clip(hu, -1024.0 + error, 30000.0 + error)
    paths = write_series(stored_hu, spacing, folder, header=header, origin_xyz_mm=origin,
                         rescale_intercept=-1024.0 + error, seed=spec.index)
    dropped = inserted.dropped_planes if inserted else ()
    for plane in dropped:
        paths[plane].unlink()
    mask_path = ""
    if inserted is not None and inserted.mask is not None:
        mask_path = f"{MASK_DIR}/{spec.source_path}.nii.gz"
        write_mask(inserted.mask, spacing, origin, out / mask_path)
    record = {"spec": asdict(spec), "complete": True, "series_uid": series_uid_for(spec),
              "files": len(paths) - len(dropped), "shape_zyx": list(hu.shape),
              "spacing_zyx_mm": list(spacing), "mask_path": mask_path,
              "seconds": time.perf_counter() - started}
    marker_path(out, spec).write_text(json.dumps(record))
    return record


def write_real_truth(out: Path, specs: list[Any]) -> Path:
    """``OUT/ground_truth.csv`` with the base and mask of every scan."""
    from ctae_core.real_cohort import LOCAL_TYPES

    def row(spec: Any) -> list[Any]:
        mask = f"{MASK_DIR}/{spec.source_path}.nii.gz" if spec.truth in LOCAL_TYPES else ""
        return [series_uid_for(spec), spec.source_path, spec.truth, spec.strength, spec.base, mask]

    return write_truth_file(out, TRUTH_COLUMNS, (row(spec) for spec in specs))


def generate_real_cohort(out: Path, base: str, n: int, seed: int, outlier_rate: float,
                         workers: int | None, progress: bool = True) -> dict[str, int]:
    """Write the real-anatomy cohort; returns counts ``written``, ``skipped``, ``failed``,
    ``removed``, ``bases``."""
    from tqdm import tqdm

    from ctae_core.real_cohort import plan_real_cohort
    from jobs.executors import ExecutorConfig, map_tasks

    bases, sources = find_bases(resolve_roots(base))
    if not any(b.region == "trunk" for b in bases):
        raise ValueError(_no_trunk(base, bases))
    specs = plan_real_cohort(bases, n, seed, outlier_rate)
    out.mkdir(parents=True, exist_ok=True)
    removed = remove_stale(out, {s.source_path for s in specs}, pattern="real_*.json")
    todo = [s for s in specs if not is_complete(out, s)]
    failed = 0
    results = map_tasks(partial(write_real_scan, out, sources), todo, ExecutorConfig(workers=workers))
    for result in tqdm(results, total=len(todo), unit="scan", disable=not progress):
        if not result.ok:
            failed += 1
            logger.error("scan=%s error=%s", result.item.source_path, result.error)
    write_real_truth(out, specs)
    return {"written": len(todo) - failed, "skipped": len(specs) - len(todo), "failed": failed,
            "removed": removed, "bases": len(bases)}
