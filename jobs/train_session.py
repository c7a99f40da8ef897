"""The torch side of `ctae train`: DDP set-up, threads, model, checkpoint, the epoch loop.

Imported by ``jobs/train.py`` only once the run is open in the catalog, so the user sees the
run start before torch's seconds of import.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as tdist
import typer
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim import Optimizer

from ctae_core import training
from ctae_core.config import TrainConfig
from ctae_core.io.checkpoint import load_checkpoint, load_encoder_weights, save_checkpoint
from ctae_core.io.volume_store import load_volume
from ctae_core.training import Dist, EpochReport, Plan, TrainingState
from data_catalog import CatalogSettings
from jobs import train_catalog
from jobs.runtime import pick_device, seed_everything
from jobs.threads import rechoose_torch_threads, set_torch_threads
from jobs.train_catalog import Scans, Splits

logger = logging.getLogger(__name__)


def start_dist(requested: str) -> Dist:
    """Single process, or DDP when launched by torchrun (WORLD_SIZE > 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist(device=pick_device(requested))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = requested != "cpu" and torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(local)
    tdist.init_process_group("nccl" if cuda else "gloo")
    return Dist(rank=tdist.get_rank(), world=world, device=f"cuda:{local}" if cuda else "cpu")


def restore(path: Path, model: nn.Module, opt: Optimizer) -> TrainingState:
    """The checkpoint's progress loaded into ``model``/``opt``; fresh if there is none yet."""
    if not path.exists():
        return TrainingState()
    state = training.restore(load_checkpoint(path), model, opt, str(path))
    logger.info("resuming from %s after epoch %d", path, state.epoch)
    return state


def epoch_writer(settings: CatalogSettings, run_id: str, plan: Plan, model: nn.Module, opt: Optimizer,
                 path: Path, threads: tuple[int | None, int] = (None, 1)
                 ) -> Callable[[TrainingState, EpochReport], None]:
    """What rank 0 does after each epoch: checkpoint, catalog row, log line; then torch's thread
    count again from the free cores (``threads``: the --threads option and the count now)."""
    requested, chosen = threads

    def on_epoch(state: TrainingState, report: EpochReport) -> None:
        nonlocal chosen
        save_checkpoint(training.checkpoint_payload(model, opt, plan, state), path)
        train_catalog.record(settings, run_id, state, report)
        validation = (f"not validated (validation from {plan.cfg.validate_from:g} of the schedule)"
                      if report.val_loss is None else
                      f"val MSE {report.val_loss:.4f} (predicting the training mean: {report.baseline:.4f})")
        logger.info("epoch %d/%d train %.4f %s %.1f vol/s", report.epoch, plan.cfg.epochs,
                    report.train_loss, validation, report.volumes_per_s)
        chosen = rechoose_torch_threads(requested, chosen)

    return on_epoch


def fit_normal_error(path: Path, plan: Plan, scans: Scans, device: str) -> None:
    """Reconstruct a seeded sample of the training scans with the best weights, as `ctae score`
    will, and store the model's usual |error| per context in the checkpoint
    (``ctae_core.error_norm``): the anomaly maps of `ctae score` are the |error| above it."""
    import numpy as np

    from ctae_core.error_norm import fit
    from ctae_core.inference import normal_error_levels, run_model_from_checkpoint

    train_ids = [k for k in scans if plan.splits.get(k) == "train"]  # the catalog's order
    pick = np.random.default_rng(plan.cfg.seed).permutation(len(train_ids))[: plan.cfg.normal_error_scans]
    data = load_checkpoint(path)
    model, spec = run_model_from_checkpoint(data, path, device)
    chosen = [scans[train_ids[i]] for i in sorted(pick)]
    levels = normal_error_levels(model, spec, [(load_volume(s.volume_path), s.spacing_mm) for s in chosen],
                                 device)
    data["normal_error"] = fit(levels).to_dict()
    save_checkpoint(data, path)
    logger.info("normal error fitted on %d training scans (what the anomaly maps are measured against)",
                len(chosen))


def train(
    settings: CatalogSettings, run_id: str, opened: tuple[TrainConfig, Splits, Scans] | None, *,
    resume: bool, encoder_weights: Path | None, device: str, progress: bool, threads: int | None,
) -> dict[str, Any]:
    """Fit the opened run (``opened`` on rank 0; the other ranks read it once rank 0 wrote it);
    returns the summary (epochs, best validation MSE, baseline MSE, checkpoint)."""
    chosen = set_torch_threads(threads)
    dist = start_dist(device)
    if dist.world > 1:
        tdist.barrier()
    cfg, splits, scans = opened if dist.main and opened else train_catalog.read_run(settings, run_id)
    seed_everything(cfg.seed)
    try:
        plan = training.make_plan(cfg, splits, scans, load_volume)
    except training.PlanError as err:
        raise typer.BadParameter(str(err)) from err
    model = training.new_model(plan.cfg)
    if encoder_weights is not None:
        if not hasattr(model, "encoder"):
            raise typer.BadParameter(f"--encoder-weights loads a Med3D encoder; preset "
                                     f"{plan.cfg.preset!r} is a {plan.cfg.model.architecture} model "
                                     "— use --preset thesis (or tiny, small)")
        load_encoder_weights(model.encoder, encoder_weights)
    model = training.place(model, dist)
    opt = training.new_optimizer(plan.cfg, model)
    path = settings.run_dir(run_id) / "checkpoint.pt"
    state = restore(path, model, opt) if resume else TrainingState()
    if dist.world > 1:
        model = DistributedDataParallel(model, device_ids=[int(dist.device.split(":")[1])] if dist.cuda else None)
    if dist.main:
        train_catalog.write_plan(settings, run_id, plan, path, state.epoch)
        logger.info("run %s: %s, spacing %.1f mm, pad %s, μ=%.1f HU σ=%.1f HU, device %s×%d", run_id,
                    plan.cfg.preset, plan.cfg.spacing_mm, plan.pad_size_zyx, plan.mean_hu, plan.std_hu,
                    dist.device, dist.world)
    try:
        state, stopped = training.fit(model, opt, plan, dist, state,
                                      epoch_writer(settings, run_id, plan, model, opt, path, (threads, chosen)),
                                      progress)
    except BaseException:
        if dist.main:
            train_catalog.set_status(settings, run_id, "failed")
        raise
    if stopped:
        logger.info("early stopping: no better validation loss for %d epochs", plan.cfg.early_stopping)
    if dist.main and plan.cfg.normal_error_scans > 0:
        fit_normal_error(path, plan, scans, dist.device)
    summary: dict[str, Any] = {"run_id": run_id, "epochs": state.epoch, "best_val_mse": state.best_val_loss,
                               "mean_baseline_val_mse": state.baseline, "checkpoint": str(path)}
    if dist.main:
        train_catalog.set_status(settings, run_id, "trained")
        summary["ratio_to_baseline"] = train_catalog.report_trained(run_id, state)
    return summary
