"""`ctae train`: split the ingested scans, then fit the autoencoder (``ctae_core.training``).

A thin job: it reads the scans and the split from the catalog, hands them to
``ctae_core.training`` and, after every epoch, writes the checkpoint atomically and the epoch's
row to the catalog. ``--resume`` continues from the checkpoint on exactly the same curve.
Under ``torchrun`` it trains with DDP; rank 0 writes. Also runnable as ``python -m jobs.train``
(what torchrun launches).
"""

from __future__ import annotations

import json
import logging
import os
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ctae_core.config import TrainConfig, preset, with_overrides
from ctae_core.data import ScanItem
from ctae_core.errors import CheckpointError
from ctae_core.splits import SplitError, assign_splits
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
from jobs.options import CatalogOption, NoProgressOption, StoreOption, settings_from
from jobs.runtime import job_run, pick_device, seed_everything

if TYPE_CHECKING:
    from torch import nn
    from torch.optim import Optimizer

    from ctae_core.training import Dist, EpochReport, Plan, TrainingState

logger = logging.getLogger(__name__)

CLEARLY_BELOW = 0.5
"""A trained model's validation MSE must be below this fraction of the mean-prediction MSE."""

Scans = dict[str, ScanItem]
Splits = dict[str, str]
Summary = dict[str, Any]


def _parse_pad(text: str | None) -> tuple[int, int, int] | None:
    if text is None:
        return None
    try:
        values = tuple(int(v) for v in text.replace("x", ",").split(","))
    except ValueError:
        values = ()
    if len(values) != 3 or min(values) < 1:
        raise typer.BadParameter(f"--pad-size must be Z,Y,X voxel counts like 273,87,87, not {text!r}")
    return values  # type: ignore[return-value]


def build_config(preset_name: str, **overrides: Any) -> TrainConfig:
    """The preset's TrainConfig with CLI overrides (None = keep the preset's value)."""
    return with_overrides(preset(preset_name), preset=preset_name, **overrides)


def _start_dist(requested: str) -> Dist:
    """Single process, or DDP when launched by torchrun (WORLD_SIZE > 1)."""
    import torch
    import torch.distributed as tdist

    from ctae_core.training import Dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist(device=pick_device(requested))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = requested != "cpu" and torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(local)
    tdist.init_process_group("nccl" if cuda else "gloo")
    return Dist(rank=tdist.get_rank(), world=world, device=f"cuda:{local}" if cuda else "cpu")


def _barrier(dist: Dist) -> None:
    if dist.world > 1:
        import torch.distributed as tdist

        tdist.barrier()


def _scan_items(settings: CatalogSettings, read_only: bool = False) -> Scans:
    with connect(settings.catalog_path, read_only=read_only) as con:
        rows = training_scans(con)
    return {s.scan_id: ScanItem(s.scan_id, s.volume_path, s.spacing_mm, (s.size_z, s.size_y, s.size_x))
            for s in rows}


def _resolve_split(con: Any, run_id: str, cfg: TrainConfig, reuse_split: str | None, scans: Scans) -> Splits:
    existing = read_splits(con, run_id)
    if existing:
        return {k: v for k, v in existing.items() if k in scans}
    if reuse_split:
        reused = read_splits(con, reuse_split)
        if not reused:
            raise typer.BadParameter(f"--reuse-split {reuse_split!r}: that run has no split in the catalog")
        kept = {k: v for k, v in reused.items() if k in scans}
        if {"train", "val"} - set(kept.values()):
            raise typer.BadParameter(f"--reuse-split {reuse_split!r}: no train or val scans of it remain")
        return kept
    return assign_splits(list(scans), cfg.seed, cfg.val_fraction, cfg.test_fraction)


def open_run(
    settings: CatalogSettings, run_id: str, cfg: TrainConfig, resume: bool, reuse_split: str | None
) -> tuple[TrainConfig, Splits, Scans]:
    """Create (or, with ``resume``, reopen) the run and fix its split; returns (cfg, splits, scans)."""
    scans = _scan_items(settings)
    with connect(settings.catalog_path) as con:
        row = get_run(con, run_id)
        if resume and row is not None:
            stored = TrainConfig.from_dict(json.loads(row["config_json"]))
            cfg = replace(stored, epochs=cfg.epochs, early_stopping=cfg.early_stopping)
            update_run(con, run_id, status="training", config_json=json.dumps(cfg.to_dict()))
        splits = _resolve_split(con, run_id, cfg, reuse_split, scans)  # raises before any write
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
        splits = {k: v for k, v in read_splits(con, run_id).items() if k in scans}
    return cfg, splits, scans


def _write_plan(settings: CatalogSettings, run_id: str, plan: Plan, checkpoint: Path, start_epoch: int) -> None:
    z, y, x = plan.pad_size_zyx
    cfg = replace(plan.cfg, pad_size_zyx=plan.pad_size_zyx)
    with connect(settings.catalog_path) as con:
        update_run(con, run_id, spacing_mm=cfg.spacing_mm, pad_size_z=z, pad_size_y=y, pad_size_x=x,
                   norm_mean=plan.mean_hu, norm_std=plan.std_hu, checkpoint_path=str(checkpoint),
                   config_json=json.dumps(cfg.to_dict()))
        drop_history_after(con, run_id, start_epoch)


def _restore(path: Path, model: nn.Module, opt: Optimizer) -> TrainingState:
    """The checkpoint's progress loaded into ``model``/``opt``; fresh if there is none yet."""
    from ctae_core.io.checkpoint import load_checkpoint
    from ctae_core.training import TrainingState, restore

    if not path.exists():
        return TrainingState()
    state = restore(load_checkpoint(path), model, opt, str(path))
    logger.info("resuming from %s after epoch %d", path, state.epoch)
    return state


def _epoch_writer(settings: CatalogSettings, run_id: str, plan: Plan, model: nn.Module, opt: Optimizer,
                  path: Path):
    """What rank 0 does after each epoch: checkpoint, catalog row, log line."""
    from ctae_core.io.checkpoint import save_checkpoint
    from ctae_core.training import checkpoint_payload

    def on_epoch(state: TrainingState, report: EpochReport) -> None:
        save_checkpoint(checkpoint_payload(model, opt, plan, state), path)
        with connect(settings.catalog_path) as con:
            record_epoch(con, run_id, report.epoch, report.train_loss, report.val_loss, report.lr,
                         report.epoch_s, report.volumes_per_s)
            update_run(con, run_id, epochs_done=report.epoch, best_val_loss=state.best_val_loss,
                       mean_baseline_val_mse=state.baseline)
        logger.info("epoch %d/%d train %.4f val MSE %.4f (predicting the training mean: %.4f) "
                    "%.1f vol/s", report.epoch, plan.cfg.epochs, report.train_loss, report.val_loss,
                    report.baseline, report.volumes_per_s)

    return on_epoch


def run_training(
    settings: CatalogSettings, run_id: str, cfg: TrainConfig, *, resume: bool = False,
    reuse_split: str | None = None, encoder_weights: Path | None = None, device: str = "auto",
    progress: bool = True, threads: int | None = None,
) -> Summary:
    """Train run ``run_id`` end to end; returns a summary (epochs, val MSE, baseline MSE, paths)."""
    rank = int(os.environ.get("RANK", "0"))
    if rank == 0:  # the catalog work and its log line come before torch's seconds of import
        cfg, splits, scans = open_run(settings, run_id, cfg, resume, reuse_split)
    # torch and the loop, imported only now that the user has seen the run start
    from ctae_core import training
    from ctae_core.io.checkpoint import load_encoder_weights
    from ctae_core.io.volume_store import load_volume
    from jobs.threads import set_torch_threads

    set_torch_threads(threads)
    dist = _start_dist(device)
    seed_everything(cfg.seed)
    _barrier(dist)
    if not dist.main:
        cfg, splits, scans = read_run(settings, run_id)
    try:
        plan = training.make_plan(cfg, splits, scans, load_volume)
    except training.PlanError as err:
        raise typer.BadParameter(str(err)) from err
    model = training.new_model(plan.cfg)
    if encoder_weights is not None:
        load_encoder_weights(model.encoder, encoder_weights)
    model = training.place(model, dist)
    opt = training.new_optimizer(plan.cfg, model)
    path = settings.run_dir(run_id) / "checkpoint.pt"
    state = _restore(path, model, opt) if resume else training.TrainingState()
    if dist.world > 1:
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(model, device_ids=[int(dist.device.split(":")[1])] if dist.cuda else None)
    if dist.main:
        _write_plan(settings, run_id, plan, path, state.epoch)
        logger.info("run %s: %s, spacing %.1f mm, pad %s, μ=%.1f HU σ=%.1f HU, device %s×%d", run_id,
                    plan.cfg.preset, plan.cfg.spacing_mm, plan.pad_size_zyx, plan.mean_hu, plan.std_hu,
                    dist.device, dist.world)
    try:
        state, stopped = training.fit(model, opt, plan, dist, state,
                                      _epoch_writer(settings, run_id, plan, model, opt, path), progress)
    except BaseException:
        if dist.main:
            with connect(settings.catalog_path) as con:
                update_run(con, run_id, status="failed")
        raise
    if stopped:
        logger.info("early stopping: no better validation loss for %d epochs", plan.cfg.early_stopping)
    return _finish(settings, run_id, dist, state, path)


def _finish(settings: CatalogSettings, run_id: str, dist: Dist, state: TrainingState, path: Path) -> Summary:
    summary: Summary = {"run_id": run_id, "epochs": state.epoch, "best_val_mse": state.best_val_loss,
                        "mean_baseline_val_mse": state.baseline, "checkpoint": str(path)}
    if not dist.main:
        return summary
    with connect(settings.catalog_path) as con:
        update_run(con, run_id, status="trained")
    ratio = (state.best_val_loss or 0.0) / max(state.baseline or 1e-12, 1e-12)
    logger.info("run %s trained: validation MSE %.4f vs %.4f predicting the training mean (ratio %.3f)",
                run_id, state.best_val_loss, state.baseline, ratio)
    if ratio > CLEARLY_BELOW:
        logger.warning("run %s: validation MSE is not clearly below the mean prediction (ratio %.2f > %.2f); "
                       "train longer (--epochs) or check the scans", run_id, ratio, CLEARLY_BELOW)
    summary["ratio_to_baseline"] = ratio
    return summary


def train_command(
    run: Annotated[str, typer.Option("--run", "--run-name", help="Name of the run (its run_id); under torchrun spell it --run-name.")],
    catalog: CatalogOption = None,
    store: StoreOption = None,
    preset_name: Annotated[str, typer.Option("--preset", help="tiny | small | thesis (Table 3.1).")] = "tiny",
    epochs: Annotated[int | None, typer.Option(help="Epochs (preset's by default).")] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", help="Volumes per step.")] = None,
    lr: Annotated[float | None, typer.Option(help="Learning rate.")] = None,
    lr_schedule: Annotated[str | None, typer.Option("--lr-schedule", help="constant (thesis) | cosine (tiny, small): lr falls to 1 % of --lr by the last epoch.")] = None,
    spacing: Annotated[float | None, typer.Option(help="Model input spacing in mm (tiny: 6).")] = None,
    pad_size: Annotated[str | None, typer.Option("--pad-size", help="Z,Y,X padded size; default: the largest scan.")] = None,
    latent: Annotated[int | None, typer.Option(help="Latent size (thesis 1024).")] = None,
    depth: Annotated[int | None, typer.Option(help="Encoder ResNet depth: 10, 18 or 34.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of split, weights, order, placement.")] = None,
    reuse_split: Annotated[str | None, typer.Option("--reuse-split", help="Reuse this run's split.")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run from its checkpoint.")] = False,
    early_stopping: Annotated[int | None, typer.Option("--early-stopping", help="Stop after N epochs without a better val loss.")] = None,
    encoder_weights: Annotated[Path | None, typer.Option("--encoder-weights", help="Local MedicalNet/Med3D .pth for the encoder.")] = None,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda")] = "auto",
    threads: Annotated[int | None, typer.Option("--threads", min=1, help="CPU threads for torch. Default: one per core that other processes leave free.")] = None,
    no_progress: NoProgressOption = False,
) -> None:
    """Train the 3D autoencoder on the ingested scans (split, normalise, pad, fit, checkpoint)."""
    settings = settings_from(catalog, store)
    try:
        cfg = build_config(preset_name, epochs=epochs, batch_size=batch_size, lr=lr,
                           lr_schedule=lr_schedule, spacing_mm=spacing,
                           pad_size_zyx=_parse_pad(pad_size), latent=latent, depth=depth, seed=seed,
                           early_stopping=early_stopping)
    except ValueError as err:
        raise typer.BadParameter(str(err)) from err
    args = {"run": run, "preset": preset_name, "resume": resume, "config": cfg.to_dict()}
    # Under torchrun only rank 0 touches the catalog's job log; other ranks keep off the file.
    primary = int(os.environ.get("RANK", "0")) == 0
    try:
        with job_run(settings, "train", args) if primary else nullcontext({}) as counts:
            counts.update(run_training(settings, run, cfg, resume=resume, reuse_split=reuse_split,
                                       encoder_weights=encoder_weights, device=device,
                                       progress=not no_progress, threads=threads))
    except (RunError, SplitError, CheckpointError) as err:
        typer.secho(f"ctae train: {err}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from err
    typer.echo(json.dumps(counts, default=str))


def register(app: typer.Typer) -> None:
    """Add ``ctae train`` to the CLI."""
    app.command("train")(train_command)


def main() -> None:
    """``python -m jobs.train …`` (what ``torchrun`` launches): the train command alone."""
    from jobs.cli import configure_logging

    configure_logging()
    standalone = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    standalone.command()(train_command)
    standalone()


if __name__ == "__main__":
    main()
