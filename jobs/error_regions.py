"""The anomaly map's peak inside the patient and in the body's outer shell
(``ctae_core.error_regions``): measured for a run's scans scored before schema v19 from their
stored maps and volumes (`ctae score`, and `--rethreshold-only`, run it before the outlier
score; a fresh scoring measures both peaks as it makes the map), and, once the evidence has
rated each region, the hottest region put where the rarer region's peak is. Each batch is
written as it is done."""

from __future__ import annotations

import logging

import numpy as np

from data_catalog import connect
from data_catalog import scores as catalog_scores
from data_catalog.settings import CatalogSettings
from jobs.executors import ExecutorConfig, map_in_batches

logger = logging.getLogger(__name__)

RegionItem = tuple[str, str, str, float, float]
"""(scan_id, map path, stored volume path, stored spacing mm, the run's spacing mm)."""


def map_grid_hu(stored_hu: np.ndarray, stored_mm: float, run_mm: float,
                map_shape: tuple[int, ...]) -> tuple[np.ndarray, float]:
    """The stored scan on the grid its anomaly map was stored on, and that grid's spacing: the
    stored grid itself (a run at the stored spacing, or a coarser run, whose map `ctae score`
    makes on the stored grid), else the run's grid, centre-cropped to the pad size as the model
    saw it (``ctae_core.inference.prepare_input``)."""
    from ctae_core.data import rescale_volume
    from ctae_core.padding import centre_crop_slices

    if tuple(stored_hu.shape) == tuple(map_shape):
        return np.asarray(stored_hu), stored_mm
    hu = rescale_volume(stored_hu, stored_mm, run_mm) if abs(run_mm - stored_mm) > 1e-6 else stored_hu
    hu = np.asarray(hu)[centre_crop_slices(hu.shape, map_shape)]
    if hu.shape != tuple(map_shape):
        raise ValueError(f"the stored map {tuple(map_shape)} fits neither the stored scan {stored_hu.shape} "
                         f"nor the run's grid {hu.shape}; re-score the run with --overwrite")
    return hu, run_mm


def measure_one(item: RegionItem) -> tuple[str, float, float]:
    """(scan_id, interior peak, shell peak) of one scored scan's stored map."""
    from ctae_core.error_regions import region_peaks
    from ctae_core.io.volume_store import load_volume

    scan_id, error_path, volume_path, stored_mm, run_mm = item
    amap = load_volume(error_path, mmap=False)
    hu, spacing_mm = map_grid_hu(load_volume(volume_path), float(stored_mm), float(run_mm), amap.shape)
    return (scan_id, *region_peaks(amap, hu, spacing_mm))


def measure_error_regions(settings: CatalogSettings, run_id: str,
                          executor: ExecutorConfig | None = None) -> dict[str, int]:
    """Measure every scored scan of the run with a stored map and no interior / shell peak;
    returns counts for ``job_runs``. A scan whose map or volume is gone is logged and left
    unmeasured (the run's local error then reads each scan's whole-map peak)."""
    with connect(settings.catalog_path) as con:
        todo = catalog_scores.scores_without_error_regions(con, run_id)
    if todo.empty:
        return {"error_regions_measured": 0, "error_regions_failed": 0}
    logger.info("run=%s: measuring the anomaly map's interior and shell peaks of %d scan(s) "
                "scored before schema v19", run_id, len(todo))
    items = list(todo[["scan_id", "error_path", "volume_path", "spacing_mm", "run_spacing_mm"]]
                 .itertuples(index=False, name=None))

    def write(rows: list[tuple[str, float, float]]) -> int:
        with connect(settings.catalog_path) as con:
            return catalog_scores.write_error_regions(con, run_id, rows)

    def failed_one(item: RegionItem, error: str) -> None:
        logger.warning("run=%s scan=%s: interior and shell peaks not measured (%s)", run_id, item[0], error)

    measured, failed = map_in_batches(measure_one, items, write, failed_one, executor or ExecutorConfig())
    return {"error_regions_measured": measured, "error_regions_failed": failed}


def move_hottest_regions(settings: CatalogSettings, run_id: str, scan_ids: np.ndarray,
                         interior_rarer: np.ndarray) -> dict[str, int]:
    """Put each scan's hottest region (``scores.hot_*``, where the viewer opens it and what
    `ctae evaluate` locates) at the peak of the region its evidence rates rarer: ``interior_rarer``
    per scan of ``scan_ids`` (True: inside the patient, False: the outer shell). A scan already
    there is left as it is (one voxel of its stored map read); a scan whose map is not on the
    stored grid (a cropped scan, a run with a normal-error table) keeps the map's peak. Run
    again after every change of the evidence, it moves a scan back when the rating turns."""
    with connect(settings.catalog_path) as con:
        stored = catalog_scores.hottest_region_inputs(con, run_id).set_index("scan_id")
    rarer = dict(zip(scan_ids, np.asarray(interior_rarer, dtype=bool), strict=True))
    items = [(row.Index, row.error_path, row.volume_path, float(row.spacing_mm),
              (int(row.size_z), int(row.size_y), int(row.size_x)), (int(row.hot_z), int(row.hot_y), int(row.hot_x)),
              bool(rarer[row.Index]), float(row.local_error_interior_hu if rarer[row.Index] else row.local_error_shell_hu))
             for row in stored.itertuples() if row.Index in rarer]
    moved: list[tuple[str, tuple[int, int, int], float, float]] = []
    failed = 0
    for item in items:  # in this process: most scans cost one voxel read, a pool's start more
        try:
            placed = _hottest_at_rarer_region(item)
        except (OSError, ValueError) as err:
            failed += 1
            logger.warning("run=%s scan=%s: hottest region not placed (%s)", run_id, item[0], err)
            continue
        if placed is not None:
            moved.append(placed)
    with connect(settings.catalog_path) as con:
        catalog_scores.write_hottest_regions(con, run_id, moved)
    return {"hottest_regions_moved": len(moved), "hottest_regions_failed": failed}


def _hottest_at_rarer_region(item: tuple) -> tuple[str, tuple[int, int, int], float, float] | None:
    """(scan_id, voxel, spacing, region mL) where the scan's hottest region must move, else None."""
    from ctae_core.anomaly_map import hottest_region
    from ctae_core.error_regions import region_peak_at
    from ctae_core.io.volume_store import load_volume

    scan_id, error_path, volume_path, spacing_mm, shape, hot_zyx, interior, peak_hu = item
    amap = load_volume(error_path)
    if tuple(amap.shape) != shape:
        return None
    if abs(float(amap[hot_zyx]) - peak_hu) <= 0.51:  # already at that region's peak (int16 map)
        return None
    at = region_peak_at(amap, load_volume(volume_path), spacing_mm, interior)
    if at is None:
        return None
    return scan_id, at, spacing_mm, hottest_region(amap, spacing_mm, at=at).volume_ml
