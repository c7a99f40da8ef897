"""Measure how each scan was acquired (noise, body outline, streaks, rings, the body on the
reconstructed field's edge) from its stored volume, for the outlier score. `ctae score` runs it
before computing the score, for every scan not yet measured (new scans, scans of catalogs from
before schema v3, and since v18 every scan without the field edge). It is kept out of
`ctae ingest`, whose per-series time is benchmarked against dcm2niix (0.1–0.2 s per scan,
in a process pool). Each batch is written as it is measured, so a killed run loses nothing.
"""

from __future__ import annotations

import logging

from data_catalog import connect
from data_catalog.scans import AcquisitionRow, scans_without_acquisition, write_acquisition
from data_catalog.settings import CatalogSettings
from jobs.executors import ExecutorConfig, map_in_batches

logger = logging.getLogger(__name__)


def measure_one(item: tuple[str, str, float]) -> AcquisitionRow:
    """(scan_id, noise_hu, body_edge_mm, body_profile, streak_contrast, ring_contrast,
    field_edge_mm) of one stored volume."""
    from ctae_core.acquisition import acquisition_features
    from ctae_core.io.volume_store import load_volume

    scan_id, volume_path, spacing_mm = item
    features = acquisition_features(load_volume(volume_path, mmap=False), spacing_mm)
    return (scan_id, features.noise_hu, features.body_edge_mm, list(features.body_profile),
            features.streak_contrast, features.ring_contrast, features.field_edge_mm)


def measure_stored_scans(
    settings: CatalogSettings, executor: ExecutorConfig | None = None
) -> dict[str, int]:
    """Measure every scan without acquisition facts; returns counts for ``job_runs``.

    A scan whose stored volume is missing or unreadable is logged and left unmeasured (its
    outlier score then lacks the shape, noise and streak evidence); the next run tries again.
    """
    with connect(settings.catalog_path) as con:
        todo = scans_without_acquisition(con)
    if todo.empty:
        return {"measured": 0, "measure_failed": 0}
    logger.info("measuring noise, body outline, streaks, rings and field edge of %d scan(s)", len(todo))
    items = list(todo[["scan_id", "volume_path", "spacing_mm"]].itertuples(index=False, name=None))

    def write(rows: list[AcquisitionRow]) -> int:
        with connect(settings.catalog_path) as con:
            return write_acquisition(con, rows)

    def failed_one(item: tuple[str, str, float], error: str) -> None:
        logger.warning("scan=%s: acquisition not measured (%s); re-ingest it if its stored "
                       "volume is gone", item[0], error)

    measured, failed = map_in_batches(measure_one, items, write, failed_one, executor or ExecutorConfig())
    logger.info("measured %d scan(s), %d failed", measured, failed)
    return {"measured": measured, "measure_failed": failed}

