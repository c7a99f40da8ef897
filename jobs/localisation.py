"""The localisation part of `ctae evaluate`: the run's anomaly maps against the voxel masks of
the cohort's local anomalies (``mask_path`` in ground_truth.csv, source space), resampled onto
the stored grid by physical position."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ctae_core.anomaly_map import REGIONS_SHOWN

logger = logging.getLogger(__name__)

SHOWN_KEY = f"hottest_{REGIONS_SHOWN}_within_10mm"
"""The counts' key of the share found by one of the regions the viewer steps through."""


def _map_on_stored_grid(path: str, run_spacing: float, stored_spacing: float,
                        shape: tuple[int, int, int]) -> np.ndarray:
    """A stored anomaly map on the stored grid of ``shape``: as it is when it was made there (a
    coarser run's since stop 34), else resampled from the run's spacing."""
    from ctae_core.data import rescale_volume
    from ctae_core.io.volume_store import load_volume

    amap = np.asarray(load_volume(path), dtype=np.float32)
    if amap.shape != tuple(shape) and abs(run_spacing - stored_spacing) > 1e-6:
        amap = rescale_volume(amap, run_spacing, stored_spacing)
    out = np.zeros(shape, dtype=np.float32)
    box = tuple(slice(0, min(a, b)) for a, b in zip(amap.shape, shape, strict=True))
    out[box] = amap[box]
    return out


def localisation_counts(inputs: pd.DataFrame, masks: pd.Series | None, cohort_dir: Path,
                        run: dict[str, Any]) -> dict[str, Any]:
    """Voxel AP, share of objects found within 10 mm (by the hottest region, and by one of the
    ``REGIONS_SHOWN`` hottest the viewer steps through) and their count, for `job_runs`.

    Args:
        inputs: ``evaluation_inputs`` rows.
        masks: Per row, the mask file relative to ``cohort_dir`` ('' or None: no object), or
            None when the truth file names no masks (then the result is empty).
    """
    from ctae_core.anomaly_map import hottest_regions
    from ctae_core.io.mask_files import mask_on_stored_grid
    from ctae_core.localisation import NEAR_MM, distance_to_mask_mm, localise

    if masks is None:
        return {}
    maps, grids, hottest, skipped, shown_hits = [], [], [], 0, 0
    for row, mask_file in zip(inputs.itertuples(index=False), masks, strict=True):
        if not isinstance(mask_file, str) or not mask_file:
            continue
        if not (cohort_dir / mask_file).exists():  # a cohort written before masks existed
            logger.warning("scan=%s: mask %s is missing; left out", row.scan_id, cohort_dir / mask_file)
            skipped += 1
            continue
        if not isinstance(row.error_path, str) or pd.isna(row.hot_z) or not Path(row.error_path).exists():
            skipped += 1
            continue
        shape = (int(row.size_z), int(row.size_y), int(row.size_x))
        mask = mask_on_stored_grid(cohort_dir / mask_file, float(row.spacing_mm))
        if mask.shape != shape:
            logger.warning("scan=%s: mask grid %s differs from the stored %s; left out",
                           row.scan_id, mask.shape, shape)
            skipped += 1
            continue
        amap = _map_on_stored_grid(row.error_path, float(run["spacing_mm"]), float(row.spacing_mm), shape)
        maps.append(amap)
        grids.append(mask)
        hottest.append((int(row.hot_z), int(row.hot_y), int(row.hot_x)))
        peaks = [p for _, p, _ in hottest_regions(amap, float(row.spacing_mm), first_at=hottest[-1])]
        shown_hits += any(distance_to_mask_mm(p, mask, float(row.spacing_mm)) <= NEAR_MM for p in peaks)
        # (an empty mask is never near: localise leaves its scan out, and so the share below)
    if not maps:
        return {"localisation_scans": 0, "localisation_skipped": skipped}
    result = localise(maps, grids, hottest, float(inputs["spacing_mm"].iloc[0]))
    return {"voxel_ap": result.voxel_ap, "hottest_within_10mm": result.hit_rate,
            SHOWN_KEY: shown_hits / max(result.n_scans, 1),
            "localisation_scans": result.n_scans, "localisation_skipped": skipped,
            "hottest_distance_mm_median": float(np.median(result.distances_mm))}


def format_localisation(counts: dict[str, Any]) -> str:
    """The printable localisation line of ``localisation_counts`` ('' when nothing was located)."""
    if not counts.get("localisation_scans"):
        return ""
    return (f"\nlocalisation on {counts['localisation_scans']} scans with an object mask: voxel AP "
            f"{counts['voxel_ap']:.3f}, hottest region within 10 mm of the object "
            f"{100 * counts['hottest_within_10mm']:.0f} % (median distance "
            f"{counts['hottest_distance_mm_median']:.1f} mm)" + _shown(counts))


def _shown(counts: dict[str, Any]) -> str:
    """The share found by one of the regions the viewer steps through (absent in older counts)."""
    share = counts.get(SHOWN_KEY)
    return "" if share is None else f", one of the {REGIONS_SHOWN} hottest within 10 mm {100 * share:.0f} %"
