"""Scoring work that runs inside a worker: a local pool process, a Ray actor, or the driver.

``BatchScorer`` is the picklable factory handed to ``jobs.executors.map_stateful``: in each
worker it loads the run's model once and returns the function that scores one batch of scans
(``score_batch``). Workers write the recon / |error| arrays into the shared store and return
score records; they never open the catalog.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from data_catalog.scores import ScoreRecord
from jobs.score_options import ScoreOptions

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from ctae_core.error_norm import NormalError
    from ctae_core.inference import InputSpec, PreparedInput
    from ctae_core.model import Autoencoder

logger = logging.getLogger(__name__)

BatchResult = tuple[list[ScoreRecord], dict[str, str]]
"""(score records, {scan_id: error message}) of one batch."""


@dataclass(frozen=True)
class ScanRow:
    """What a worker needs to know about one scan to score it (picklable, unlike pandas rows)."""

    scan_id: str
    split: str
    volume_path: str
    spacing_mm: float


def scan_rows(todo: pd.DataFrame) -> list[ScanRow]:
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
        options: The job's options (device, channels_last, volume policy).
        run_dir: ``<store>/runs/<run_id>``, where recon / error arrays go.
        threads: Torch CPU threads in this worker (None: one per core other processes leave
            free, see ``jobs.threads``); set so that several local workers do not oversubscribe
            the cores.
    """

    checkpoint_path: str
    options: ScoreOptions
    run_dir: Path
    threads: int | None = None

    def __call__(self) -> Callable[[list[ScanRow]], BatchResult]:
        from ctae_core.inference import run_model_from_checkpoint
        from ctae_core.io.checkpoint import load_checkpoint, normal_error_from
        from jobs.runtime import pick_device
        from jobs.threads import set_torch_threads

        set_torch_threads(self.threads, source="--threads" if self.options.threads else
                          "the scoring processes' share of the free cores")
        device = pick_device(self.options.device)
        data = load_checkpoint(self.checkpoint_path)  # read once: the weights and the table
        model, spec = run_model_from_checkpoint(data, self.checkpoint_path, device,
                                                self.options.channels_last)
        return functools.partial(score_batch, model=model, spec=spec, options=self.options,
                                 device=device, run_dir=self.run_dir,
                                 normal=normal_error_from(data, self.checkpoint_path))


def score_batch(
    rows: list[ScanRow], model: Autoencoder, spec: InputSpec, options: ScoreOptions,
    device: str, run_dir: Path, normal: NormalError | None = None,
) -> BatchResult:
    """Score a batch; returns its records and {scan_id: error message} for scans that failed.
    ``normal``: the run's usual |error| per context; the anomaly map is the |error| above it.

    A scan that cannot be read or prepared fails alone. Inputs of one padded shape go through
    the model together (fully convolutional runs pad Z per scan, so shapes may differ).
    """
    failures: dict[str, str] = {}
    by_shape: dict[tuple[int, ...], list[tuple[ScanRow, PreparedInput]]] = {}
    for row in rows:
        try:
            prepared = _prepare(row, spec)
        except Exception as err:  # a bad scan is recorded, the job goes on
            failures[row.scan_id] = _describe(err, "preparing the input")
            continue
        by_shape.setdefault(prepared.x.shape, []).append((row, prepared))
    records: list[ScoreRecord] = []
    for group in by_shape.values():
        more, failed = _score_group(group, model, spec, options, device, run_dir, normal)
        records += more
        failures.update(failed)
    return records, failures


def _prepare(row: ScanRow, spec: InputSpec) -> PreparedInput:
    """Load one stored scan and turn it into the model's input (resample, normalise, pad)."""
    from ctae_core.inference import prepare_input
    from ctae_core.io.volume_store import load_volume

    return prepare_input(load_volume(row.volume_path), row.spacing_mm, spec, name=row.scan_id)


def _score_group(
    ready: list[tuple[ScanRow, PreparedInput]], model: Autoencoder, spec: InputSpec,
    options: ScoreOptions, device: str, run_dir: Path, normal: NormalError | None = None,
) -> BatchResult:
    """Forward same-shape inputs together and score them; if the batched pass fails, retry
    one scan at a time so that only the culprit fails."""
    from ctae_core.inference import reconstruct_batch

    failures: dict[str, str] = {}
    try:
        recons, latents = reconstruct_batch(model, [p.x for _, p in ready], device,
                                            options.channels_last, spec.window)
    except Exception as err:
        if len(ready) == 1:
            return [], {ready[0][0].scan_id: _describe(err, "the forward pass")}
        logger.warning("batch forward failed (%s); retrying its %d scans one by one", err, len(ready))
        records: list[ScoreRecord] = []
        for item in ready:
            more, failed = _score_group([item], model, spec, options, device, run_dir, normal)
            records += more
            failures.update(failed)
        return records, failures
    records = []
    for (row, prepared), recon, latent in zip(ready, recons, latents, strict=True):
        try:
            records.append(_record(row, prepared, recon, latent, spec, options, run_dir, normal))
        except Exception as err:
            failures[row.scan_id] = _describe(err, "scoring")
    return records, failures


def _record(
    row: ScanRow, prepared: PreparedInput, recon: np.ndarray, latent: np.ndarray,
    spec: InputSpec, options: ScoreOptions, run_dir: Path, normal: NormalError | None = None,
) -> ScoreRecord:
    """Score one reconstructed scan, find its hottest region and store its recon volume and
    anomaly map (int16 HU: the |error| above the run's usual error in its context, or the raw
    |error| for a run without a normal-error table). A run coarser than the stored scans makes
    and stores its map on the stored grid; otherwise the map is on the run's grid."""
    import numpy as np

    from ctae_core.anomaly_map import anomaly_map, hottest_region, rescale_index
    from ctae_core.error_regions import region_peaks
    from ctae_core.inference import abs_error_hu, abs_error_on_stored_grid
    from ctae_core.io.volume_store import run_volume_path, save_volume
    from ctae_core.scoring import recon_hu, score_scan

    p = prepared
    s = score_scan(p.x, recon, p.region, p.hu, norm_std_hu=spec.norm_std_hu,
                   error_level_hu=options.error_level_hu)
    max_zyx = tuple(i + k.start for i, k in zip(s.max_error_zyx, p.kept, strict=True))
    if normal is None and spec.spacing_mm > row.spacing_mm + 1e-6:
        # a coarser run: the map on the stored grid, where a small object keeps its HU
        abs_error, body = abs_error_on_stored_grid(p, recon, spec)
        amap = anomaly_map(abs_error, body, row.spacing_mm)
        hot = hottest_region(amap, row.spacing_mm)
        hot_zyx = hot.centre_zyx
        interior_hu, shell_hu = region_peaks(amap, p.stored_hu, row.spacing_mm)
    else:  # the run's grid (a normal-error table holds only at the spacing it was fitted on)
        abs_error = abs_error_hu(p, recon, spec)
        if normal is not None:
            abs_error = normal.excess(abs_error, p.hu, spec.spacing_mm)
        amap = anomaly_map(abs_error, p.body_mask, spec.spacing_mm)
        hot = hottest_region(amap, spec.spacing_mm)
        interior_hu, shell_hu = region_peaks(amap, p.hu, spec.spacing_mm)
        at_run = tuple(i + k.start for i, k in zip(hot.centre_zyx, p.kept, strict=True))
        # clipped to the stored grid: a coarser run's last voxel can reach past an odd stored edge
        hot_zyx = rescale_index(at_run, spec.spacing_mm, row.spacing_mm,  # type: ignore[arg-type]
                                shape=p.stored_shape)
    recon_file = run_volume_path(run_dir, "recon", row.scan_id)
    error_file = run_volume_path(run_dir, "error", row.scan_id)
    recon_path = error_path = None
    if options.keep_volumes == "none":  # no stale volumes of an earlier scoring stay behind
        recon_file.unlink(missing_ok=True)
        error_file.unlink(missing_ok=True)
    else:
        recon_path = str(save_volume(recon_hu(
            recon[p.region], norm_mean_hu=spec.norm_mean_hu, norm_std_hu=spec.norm_std_hu), recon_file))
        error_path = str(save_volume(np.clip(np.rint(amap), 0, 32767).astype(np.int16), error_file))
    return ScoreRecord(
        run_id=options.run_id, scan_id=row.scan_id, split=row.split, mse=s.mse,
        mse_region=s.mse_region, mse_m=s.mse_m, max_error_zyx=max_zyx,  # type: ignore[arg-type]
        error_fraction=s.error_fraction, recon_path=recon_path, error_path=error_path,
        latent=latent.tolist(), hot_zyx=hot_zyx,
        hot_mm_zyx=tuple(i * row.spacing_mm for i in hot_zyx),  # type: ignore[arg-type]
        hot_volume_ml=hot.volume_ml, local_error_hu=hot.peak_hu,
        local_error_interior_hu=interior_hu, local_error_shell_hu=shell_hu,
    )


def _describe(err: Exception, stage: str) -> str:
    return f"{type(err).__name__} while {stage}: {err}"


WORKER_PEAK_GIB = 3.0
"""Memory one local scoring process is allowed for when the default count is chosen: the demo's
largest scans (272 × 152 × 152 at 3 mm) peak at about 2 GB per process, real-anatomy scans at
2.4 GB (each process's own peak: `/usr/bin/time` when they were forked from the command,
`benchmarks/bench_score_cli.py`)."""


def default_local_workers(device: str, batches: int, threads: int | None = None) -> int:
    """Local scoring processes when ``--workers`` is not given: on the CPU one per free core (one
    per ``threads`` free cores where ``--threads`` says), where the memory holds that many
    (``WORKER_PEAK_GIB`` each) and there are as many ``batches``; else one process, whose torch
    uses every free core (and always on a GPU, which one process keeps busy). Between forward
    passes a scan's anomaly map, hottest region and stored arrays are single-threaded numpy work,
    so one process with every core leaves cores idle: on the demo (2 cores, 359 scans) one process
    took 334 s (162 % CPU) and two took 247 s (186 %), with the same flags and hottest regions."""
    from jobs.runtime import pick_device
    from jobs.threads import free_cores

    processes = free_cores() // (threads or 1)
    if processes < 2 or batches < processes or pick_device(device) != "cpu":
        return 1
    return processes if available_memory_bytes() >= processes * WORKER_PEAK_GIB * 2**30 else 1


def available_memory_bytes() -> int:
    """Memory the kernel can give new work without swapping (``MemAvailable``); where it does
    not say, the free physical pages; 0 where neither is known (the default is then one process)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return 0


def threads_per_worker(workers: int) -> int | None:
    """CPU threads for each of ``workers`` local processes (None when one process has all)."""
    if workers <= 1:
        return None
    from jobs.threads import free_cores

    return max(1, free_cores() // workers)
