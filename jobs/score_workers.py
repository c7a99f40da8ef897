"""Scoring work that runs inside a worker: a local pool process, a Ray actor, or the driver.

``BatchScorer`` is the picklable factory handed to ``jobs.executors.map_stateful``: in each
worker it loads the run's model once and returns the function that scores one batch of scans
(``jobs.score._score_batch``). Workers write the recon / |error| arrays into the shared store
and return score records; they never open the catalog.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BatchResult = tuple[list[Any], dict[str, str]]
"""(score records, {scan_id: error message}) of one batch."""


@dataclass(frozen=True)
class ScanRow:
    """What a worker needs to know about one scan to score it (picklable, unlike pandas rows)."""

    scan_id: str
    split: str
    volume_path: str
    spacing_mm: float


def scan_rows(todo: Any) -> list[ScanRow]:
    """``ScanRow``s of a ``data_catalog.scores.scans_to_score`` frame, in its order."""
    return [
        ScanRow(str(r.scan_id), str(r.split), str(r.volume_path), float(r.spacing_mm))
        for r in todo.itertuples(index=False)
    ]


@dataclass(frozen=True)
class BatchScorer:
    """Factory of the per-batch scoring function; the model is loaded once per worker.

    Attributes:
        checkpoint_path: The run's checkpoint.
        options: The job's ``jobs.score.ScoreOptions`` (device, channels_last, volume policy).
        run_dir: ``<store>/runs/<run_id>``, where recon / error arrays go.
        threads: Torch CPU threads in this worker (None: torch's default, all cores); set so
            that several local workers do not oversubscribe the cores.
    """

    checkpoint_path: str
    options: Any
    run_dir: Path
    threads: int | None = None

    def __call__(self) -> Callable[[list[ScanRow]], BatchResult]:
        import torch

        from jobs.runtime import pick_device
        from jobs.score import _inference_model, _score_batch

        if self.threads is not None:
            torch.set_num_threads(self.threads)
        device = pick_device(self.options.device)
        model, spec = _inference_model(self.checkpoint_path, device, self.options.channels_last)
        return functools.partial(
            _score_batch,
            model=model,
            spec=spec,
            options=self.options,
            device=device,
            run_dir=self.run_dir,
        )


def threads_per_worker(workers: int) -> int | None:
    """CPU threads for each of ``workers`` local processes (None when one process has all)."""
    if workers <= 1:
        return None
    return max(1, (os.cpu_count() or 1) // workers)
