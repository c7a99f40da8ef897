"""What every job shares: seeding, device choice, and a job_runs record."""

from __future__ import annotations

import logging
import os
import random
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from data_catalog import connect
from data_catalog.job_runs import (
    JobProcess,
    finish_job_run,
    mark_interrupted,
    running_job_runs,
    start_job_run,
)
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


def this_process(pid: int | None = None) -> JobProcess:
    """The id, machine and start tick of a process (default: this one)."""
    pid = os.getpid() if pid is None else pid
    return JobProcess(pid, socket.gethostname(), _start_tick(pid))


def _start_tick(pid: int) -> str | None:
    """Clock ticks after boot when ``pid`` started (Linux), None where unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[19].decode() if len(fields) > 19 else None


def _is_alive(process: JobProcess) -> bool:
    """Whether the process recorded for a job still runs (on this machine)."""
    if process.pid is None:
        return True  # recorded before v4: nothing to go on
    try:
        os.kill(process.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, another user's
    if process.process_start is None:
        return True
    return _start_tick(process.pid) in (process.process_start, None)


def interrupt_dead_jobs(con: Any) -> int:
    """Mark ``interrupted`` the running job_runs of this machine whose process has died."""
    host = socket.gethostname()
    dead = [
        job_id
        for job_id, process in running_job_runs(con).items()
        if process.host == host and not _is_alive(process)
    ]
    if dead:
        logger.info("marking %d job run(s) of dead processes as interrupted", len(dead))
    return mark_interrupted(con, dead)


@contextmanager
def job_run(settings: CatalogSettings, job: str, args: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Record a job_runs row around a job; the body fills the yielded dict with summary counts.

    Rows left ``running`` by killed jobs on this machine are marked ``interrupted`` first.
    """
    with connect(settings.catalog_path) as con:
        interrupt_dead_jobs(con)
        job_id = start_job_run(con, job, args, this_process())
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
