"""The catalog side of `ctae train`: the run's row, its split, its plan and epoch records."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from ctae_core.config import TrainConfig
from ctae_core.io.volume_store import volume_intact
from ctae_core.training_set import ScanItem, assign_splits
from data_catalog import CatalogSettings, connect
from data_catalog.runs import (
    RunError,
    create_run,
    drop_history_after,
    get_run,
    read_splits,
    record_epoch,
    training_scans,
    update_run,
    write_splits,
)
from data_catalog.scores import run_ids
from jobs.job_errors import JobError

if TYPE_CHECKING:
    from ctae_core.training import EpochReport, Plan, TrainingState

logger = logging.getLogger(__name__)

CLEARLY_BELOW = 0.5
"""A trained model's validation MSE must be below this fraction of the mean-prediction MSE."""

Scans = dict[str, ScanItem]
Splits = dict[str, str]


def _scan_items(settings: CatalogSettings, read_only: bool = False) -> Scans:
    with connect(settings.catalog_path, read_only=read_only) as con:
        rows = training_scans(con)
    return {s.scan_id: ScanItem(s.scan_id, s.volume_path, s.spacing_mm, (s.size_z, s.size_y, s.size_x))
            for s in rows}


class VolumesMissingError(JobError):
    """Stored volumes of ingested scans are gone from the store."""


def _refuse_missing_volumes(scans: Scans) -> None:
    """Refuse to start where a scan's stored volume is gone or damaged: until stop 56 training
    stopped in a traceback while measuring μ/σ, and left its run behind (the next try needed
    --resume)."""
    broken = [s.volume_path for s in scans.values() if not volume_intact(s.volume_path)]
    missing = [path for path in broken if not Path(path).is_file()]  # a header read each
    if missing:
        raise VolumesMissingError(
            f"{len(missing)} of the {len(scans)} ingested scans have no stored volume (the first: "
            f"{missing[0]}); a run trains on every ingested scan — run `ctae ingest` on their "
            "source again (it stores an unchanged input whose volume is gone), or point --store "
            "at the store they are in")
    if broken:  # the rest are damaged: until stop 57 a traceback mid-way through μ/σ
        raise VolumesMissingError(
            f"{len(broken)} of the {len(scans)} ingested scans have a stored volume that is "
            f"truncated or not one ctae wrote (the first: {broken[0]}); run `ctae ingest` on "
            "their source again: it reads a scan whose volume is damaged again")


def _in_scan_order(splits: Splits, scans: Scans) -> Splits:
    """``splits`` of the scans still in the catalog, in the order of ``scans`` (the catalog's
    ``SCAN_ORDER``, which the training order and the normal-error sample follow)."""
    return {k: splits[k] for k in scans if k in splits}


def _resolve_split(cfg: TrainConfig, scans: Scans, existing: Splits, reuse_split: str | None,
                   reused: Splits) -> Splits:
    """The run's stored split, else a copy of ``--reuse-split``'s, else a fresh seeded draw;
    in the order of ``scans``."""
    if existing:
        return _in_scan_order(existing, scans)
    if reuse_split:
        if not reused:
            raise typer.BadParameter(f"--reuse-split {reuse_split!r}: that run has no split in the catalog")
        kept = _in_scan_order(reused, scans)
        if {"train", "val"} - set(kept.values()):
            raise typer.BadParameter(f"--reuse-split {reuse_split!r}: no train or val scans of it remain")
        return kept
    return assign_splits(list(scans), cfg.seed, cfg.val_fraction, cfg.test_fraction)


def open_run(
    settings: CatalogSettings, run_id: str, cfg: TrainConfig, resume: bool, reuse_split: str | None,
    resumed_with: dict[str, Any] | None = None,
) -> tuple[TrainConfig, Splits, Scans]:
    """Create (or, with ``resume``, reopen) the run and fix its split; returns (cfg, splits, scans).

    A reopened run keeps its stored config but for ``resumed_with`` (the epochs, early stopping
    and validation start the user gave again; None: ``cfg``'s epochs and early stopping), so that
    resuming without ``--epochs`` does not train to another preset's count."""
    scans = _scan_items(settings)
    _refuse_missing_volumes(scans)
    with connect(settings.catalog_path) as con:
        row = get_run(con, run_id)
        if resume and row is None:  # a mistyped name trained a fresh run until stop 56
            raise RunError(
                f"run {run_id!r} is not in {settings.catalog_path}, so there is nothing to resume; "
                f"known runs: {', '.join(run_ids(con)) or 'none'} — drop --resume to start it")
        if resume and row is not None:
            stored = TrainConfig.from_dict(json.loads(row["config_json"]))
            # a resumed run keeps its normal-error table; --normal-error-scans on resume adds one
            given = ({"epochs": cfg.epochs, "early_stopping": cfg.early_stopping}
                     if resumed_with is None else resumed_with)
            cfg = replace(stored, **given,
                          normal_error_scans=max(stored.normal_error_scans, cfg.normal_error_scans))
            update_run(con, run_id, status="training", config_json=json.dumps(cfg.to_dict()))
        reused = read_splits(con, reuse_split) if reuse_split else {}
        splits = _resolve_split(cfg, scans, read_splits(con, run_id), reuse_split, reused)  # raises before any write
        if not (resume and row is not None):
            create_run(con, run_id, cfg.preset, json.dumps(cfg.to_dict()))
        write_splits(con, run_id, splits)
    counts = {s: sum(v == s for v in splits.values()) for s in ("train", "val", "test")}
    logger.info("run %s: split train=%d val=%d test=%d", run_id, counts["train"], counts["val"], counts["test"])
    return cfg, splits, scans


def read_run(settings: CatalogSettings, run_id: str) -> tuple[TrainConfig, Splits, Scans]:
    """(cfg, splits, scans) of an opened run, read only (the other DDP ranks)."""
    scans = _scan_items(settings, read_only=True)
    with connect(settings.catalog_path, read_only=True) as con:
        cfg = TrainConfig.from_dict(json.loads(get_run(con, run_id)["config_json"]))
        splits = _in_scan_order(read_splits(con, run_id), scans)
    return cfg, splits, scans


def write_plan(settings: CatalogSettings, run_id: str, plan: Plan, checkpoint: Path, start_epoch: int) -> None:
    z, y, x = plan.pad_size_zyx
    cfg = replace(plan.cfg, pad_size_zyx=plan.pad_size_zyx)
    with connect(settings.catalog_path) as con:
        update_run(con, run_id, spacing_mm=cfg.spacing_mm, pad_size_z=z, pad_size_y=y, pad_size_x=x,
                   norm_mean=plan.mean_hu, norm_std=plan.std_hu, checkpoint_path=str(checkpoint),
                   config_json=json.dumps(cfg.to_dict()))
        drop_history_after(con, run_id, start_epoch)


def record(settings: CatalogSettings, run_id: str, state: TrainingState, report: EpochReport) -> None:
    """Write one finished epoch's row and the run's progress."""
    with connect(settings.catalog_path) as con:
        record_epoch(con, run_id, report.epoch, report.train_loss, report.val_loss, report.lr,
                     report.epoch_s, report.volumes_per_s)
        update_run(con, run_id, epochs_done=report.epoch, best_val_loss=state.best_val_loss,
                   mean_baseline_val_mse=state.baseline)


def set_status(settings: CatalogSettings, run_id: str, status: str) -> None:
    """Mark the run ``trained`` or ``failed``."""
    with connect(settings.catalog_path) as con:
        update_run(con, run_id, status=status)


def report_trained(run_id: str, state: TrainingState) -> float:
    """Log how the trained model compares with predicting the training mean; returns the ratio."""
    ratio = (state.best_val_loss or 0.0) / max(state.baseline or 1e-12, 1e-12)
    logger.info("run %s trained: validation MSE %.4f vs %.4f predicting the training mean (ratio %.3f)",
                run_id, state.best_val_loss, state.baseline, ratio)
    if ratio > CLEARLY_BELOW:
        logger.warning("run %s: validation MSE is not clearly below the mean prediction (ratio %.2f > %.2f); "
                       "train longer (--epochs) or check the scans", run_id, ratio, CLEARLY_BELOW)
    return ratio
