"""What every job shares: seeding, device choice, and a job_runs record."""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from data_catalog import connect
from data_catalog.job_runs import finish_job_run, start_job_run
from data_catalog.settings import CatalogSettings

logger = logging.getLogger(__name__)


def stack_lists(column: Any) -> Any:
    """(N, D) float64 array of a catalog column of equal-length lists (latents, histograms);
    None if any row is NULL or the lengths differ."""
    import numpy as np

    values = list(column)
    if not all(isinstance(v, list | tuple | np.ndarray) for v in values):  # NULL: None / NA / NaN
        return None
    if len({len(v) for v in values}) != 1:
        return None
    return np.stack([np.asarray(v, dtype=np.float64) for v in values])


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and (if imported) torch, so CPU runs repeat exactly."""
    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)
    try:
        import torch
    except ImportError:
        return
    torch.manual_seed(seed)


def pick_device(requested: str = "auto") -> str:
    """``cuda`` when present (or asked for), else ``cpu``."""
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"--device {requested} was asked for, but CUDA is not available here")
    return requested


@contextmanager
def job_run(settings: CatalogSettings, job: str, args: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Record a job_runs row around a job; the body fills the yielded dict with summary counts."""
    with connect(settings.catalog_path) as con:
        job_id = start_job_run(con, job, args)
    counts: dict[str, Any] = {}
    status = "failed"
    try:
        yield counts
        status = "done"
    finally:
        try:
            with connect(settings.catalog_path) as con:
                finish_job_run(con, job_id, status, counts)
        except Exception:  # the job's own outcome matters more than its bookkeeping
            logger.warning("could not record the end of job %s in job_runs", job_id, exc_info=True)
