"""Measures a run's scans gain from what `ctae score` stored (maps, reconstructions, volumes)
when a newer schema adds them: the scans scored before it are found, measured in a process pool
and written batch by batch (a killed job loses one batch at most); the next `ctae score` or
`--rethreshold-only` runs it before the outlier score, which needs them."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from data_catalog import connect
from data_catalog.settings import CatalogSettings
from jobs.executors import ExecutorConfig, map_in_batches

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredMeasure:
    """One measure of a run's scored scans taken from their stored files.

    Attributes:
        name: Its key in ``job_runs`` counts (``{name}_measured``, ``{name}_failed``).
        what: What it measures, for the log ("the noise the model removed").
        since: The schema version that added it.
        find: (catalog connection, run_id) → the scans to measure, with ``columns``.
        columns: The columns of ``find``'s frame that make one item of ``measure_one``.
        measure_one: item → one row for ``write`` (module-level: it runs in worker processes).
        write: (connection, run_id, rows) → rows written.
    """

    name: str
    what: str
    since: int
    find: Callable[[Any, str], pd.DataFrame]
    columns: tuple[str, ...]
    measure_one: Callable[[tuple], Any]
    write: Callable[[Any, str, list], int]


def measure_stored(settings: CatalogSettings, run_id: str, measure: StoredMeasure,
                   executor: ExecutorConfig | None = None) -> dict[str, int]:
    """Measure every scan ``measure.find`` returns; returns counts for ``job_runs``. A scan whose
    files are gone is logged and left unmeasured (the next run tries again)."""
    with connect(settings.catalog_path) as con:
        todo = measure.find(con, run_id)
    if todo.empty:
        return {f"{measure.name}_measured": 0, f"{measure.name}_failed": 0}
    logger.info("run=%s: measuring %s of %d scan(s) scored before schema v%d",
                run_id, measure.what, len(todo), measure.since)
    items = list(todo[list(measure.columns)].itertuples(index=False, name=None))

    def write(rows: list) -> int:
        with connect(settings.catalog_path) as con:
            return measure.write(con, run_id, rows)

    def failed_one(item: tuple, error: str) -> None:
        logger.warning("run=%s scan=%s: %s not measured (%s)", run_id, item[0], measure.what, error)

    measured, failed = map_in_batches(measure.measure_one, items, write, failed_one,
                                      executor or ExecutorConfig())
    return {f"{measure.name}_measured": measured, f"{measure.name}_failed": failed}
