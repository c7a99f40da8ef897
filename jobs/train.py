"""`ctae train`: split the ingested scans, normalise, pad, fit the autoencoder, checkpoint.

Thin orchestration over ``ctae_core`` (model, data, padding, checkpoint) and
``data_catalog.runs``. Resumable: a checkpoint is written atomically after every epoch and
``--resume`` continues from it on exactly the same curve (data order and placement depend
only on seed, epoch and index). Under ``torchrun`` it trains with DDP; rank 0 writes.
Also runnable as ``python -m jobs.train`` (what torchrun launches).
"""

from __future__ import annotations

import json
import logging
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Any

import typer

from data_catalog import CatalogSettings, connect
from jobs.options import CatalogOption, NoProgressOption, StoreOption, settings_from

logger = logging.getLogger(__name__)

CLEARLY_BELOW = 0.5
"""A trained model's validation MSE must be below this fraction of the mean-prediction MSE."""


@dataclass
class Plan:
    """What a run trains on: the resolved config, the split, the scans and μ/σ (HU)."""

    cfg: Any  # TrainConfig
    splits: dict[str, str]
    scans: dict[str, Any]  # scan_id -> TrainingScan
    pad_size_zyx: tuple[int, int, int]
    mean_hu: float = 0.0
    std_hu: float = 1.0
    train_ds: Any = None
    val_ds: Any = None
    start_epoch: int = 0


@dataclass
class Dist:
    """This process's place in a (possibly single-process) training job."""

    rank: int = 0
    world: int = 1
    device: str = "cpu"

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def cuda(self) -> bool:
        return self.device.startswith("cuda")


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


def build_config(preset_name: str, **overrides: Any):
    """The preset's TrainConfig with CLI overrides (None = keep the preset's value)."""
    from ctae_core.config import preset, with_overrides

    return with_overrides(preset(preset_name), preset=preset_name, **overrides)


def _start_dist(requested: str) -> Dist:
    """Single process, or DDP when launched by torchrun (WORLD_SIZE > 1)."""
    import torch

    from jobs.runtime import pick_device

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist(device=pick_device(requested))
    import torch.distributed as tdist

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


def _resolve_split(con, run_id: str, cfg, reuse_split: str | None, scans: dict) -> dict[str, str]:
    from ctae_core.data import assign_splits
    from data_catalog.runs import read_splits

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


def open_run(settings: CatalogSettings, run_id: str, cfg, resume: bool, reuse_split: str | None):
    """Create (or, with ``resume``, reopen) the run and fix its split; returns (cfg, splits, scans)."""
    from ctae_core.config import TrainConfig
    from data_catalog.runs import create_run, get_run, training_scans, update_run, write_splits

    with connect(settings.catalog_path) as con:
        scans = {s.scan_id: s for s in training_scans(con)}
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


def read_run(settings: CatalogSettings, run_id: str):
    """(cfg, splits, scans) of an opened run, read only (the other DDP ranks)."""
    from ctae_core.config import TrainConfig
    from data_catalog.runs import get_run, read_splits, training_scans

    with connect(settings.catalog_path, read_only=True) as con:
        scans = {s.scan_id: s for s in training_scans(con)}
        cfg = TrainConfig.from_dict(json.loads(get_run(con, run_id)["config_json"]))
        splits = {k: v for k, v in read_splits(con, run_id).items() if k in scans}
    return cfg, splits, scans


def _pad_size(cfg, splits: dict[str, str], scans: dict) -> tuple[int, int, int]:
    """The configured pad size, else the largest scan at the model spacing (multiple of 8 if spatial)."""
    from ctae_core.padding import round_up

    if cfg.pad_size_zyx is not None:
        return tuple(cfg.pad_size_zyx)
    scale = [scans[k].spacing_mm / cfg.spacing_mm for k in splits]
    sizes = [(scans[k].size_z, scans[k].size_y, scans[k].size_x) for k in splits]
    largest = [max(max(1, round(s[a] * f)) for s, f in zip(sizes, scale, strict=True)) for a in range(3)]
    return round_up(largest, 8) if cfg.model.bottleneck == "spatial" else tuple(largest)


def _z_multiple(cfg) -> int | None:
    """Fully convolutional runs pad Z per scan to a multiple of the encoder's stride."""
    from ctae_core.model import DOWNSAMPLING

    return DOWNSAMPLING if cfg.model.bottleneck == "spatial" else None


def _datasets(plan: Plan, store_loader):
    from ctae_core.data import ScanItem, VolumeDataset

    cfg = plan.cfg

    def items(split: str) -> list[ScanItem]:
        ids = sorted(k for k, v in plan.splits.items() if v == split)
        return [ScanItem(k, plan.scans[k].volume_path, plan.scans[k].spacing_mm) for k in ids]

    box = plan.pad_size_zyx
    if cfg.slab_z is not None:
        box = (min(cfg.slab_z, box[0]), box[1], box[2])
    # cache resampled volumes in memory (small at coarse spacings); at the stored spacing the
    # memory-mapped store is the cache, and thousands of 3 mm scans would not fit in RAM
    cache = any(abs(plan.scans[k].spacing_mm - cfg.spacing_mm) > 1e-6 for k in plan.splits)
    train = VolumeDataset(items("train"), store_loader, cfg.spacing_mm, box, cfg.slab_z, cfg.seed,
                          cache=cache)
    val = VolumeDataset(items("val"), store_loader, cfg.spacing_mm, plan.pad_size_zyx, None, cfg.seed,
                        random_placement=False, cache=cache, z_multiple=_z_multiple(cfg))
    return train, val


def _plan(cfg, splits: dict[str, str], scans: dict, loader) -> Plan:
    """Resolve pad size, datasets and μ/σ for a run."""
    plan = Plan(cfg, splits, scans, _pad_size(cfg, splits, scans))
    plan.cfg = replace(cfg, model=replace(cfg.model, input_size_zyx=plan.pad_size_zyx))
    plan.train_ds, plan.val_ds = _datasets(plan, loader)
    if len(plan.train_ds) == 0 or len(plan.val_ds) == 0:
        raise typer.BadParameter("the split has no train or no val scans left; ingest more scans")
    plan.mean_hu, plan.std_hu = _normalisation(plan.train_ds)
    return plan


def _normalisation(train_ds) -> tuple[float, float]:
    from ctae_core.data import normalisation_stats

    return normalisation_stats(train_ds.volume(i) for i in range(len(train_ds)))


def _build_model(plan: Plan, dist: Dist, encoder_weights: Path | None):
    import torch

    from ctae_core.io.checkpoint import load_encoder_weights
    from ctae_core.model import ConvAutoencoder3D

    torch.manual_seed(plan.cfg.seed)
    model = ConvAutoencoder3D(plan.cfg.model)
    if encoder_weights is not None:
        load_encoder_weights(model.encoder, encoder_weights)
    # channels-last 3D convolutions: faster with cuDNN, and ~2-3x faster on the CPU too (oneDNN)
    return model.to(dist.device, memory_format=torch.channels_last_3d)


def _optimizer(cfg, model):
    import torch

    if cfg.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                               weight_decay=cfg.weight_decay)
    return torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)


def _loader(train_ds, cfg, dist: Dist, epoch: int):
    import torch
    from torch.utils.data import DataLoader
    from torch.utils.data.distributed import DistributedSampler

    from ctae_core.data import collate_crops

    train_ds.set_epoch(epoch)
    if dist.world > 1:
        sampler = DistributedSampler(train_ds, dist.world, dist.rank, shuffle=True, seed=cfg.seed)
        sampler.set_epoch(epoch)
    else:
        gen = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
        sampler = torch.randperm(len(train_ds), generator=gen).tolist()
    workers = min(4, os.cpu_count() or 1) if dist.cuda else 0
    return DataLoader(train_ds, batch_size=cfg.batch_size, sampler=sampler, num_workers=workers,
                      collate_fn=collate_crops, pin_memory=dist.cuda)


def _autocast(dist: Dist):
    import contextlib

    import torch

    if dist.cuda:  # bf16 autocast on GPUs only; CPU stays float32 and deterministic
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _to_device_batch(crops, offsets, box, plan: Plan, dist: Dist):
    import torch

    from ctae_core.data import assemble_batch

    x = assemble_batch(crops, offsets, box, plan.mean_hu, plan.std_hu, dist.device)
    return x.contiguous(memory_format=torch.channels_last_3d)


def train_epoch(model, opt, train_ds, plan: Plan, dist: Dist, epoch: int, progress: bool) -> tuple[float, float]:
    """One pass over the training scans; returns (mean train loss, volumes/s)."""
    import torch
    from tqdm import tqdm

    model.train()
    loader = _loader(train_ds, plan.cfg, dist, epoch)
    total, count, started = 0.0, 0, time.perf_counter()
    bar = tqdm(loader, desc=f"epoch {epoch + 1}/{plan.cfg.epochs}", disable=not (progress and dist.main),
               leave=False, unit="batch")
    for crops, offsets in bar:
        x = _to_device_batch(crops, offsets, train_ds.box_zyx, plan, dist)
        opt.zero_grad(set_to_none=True)
        with _autocast(dist):
            loss = torch.mean((model(x).float() - x) ** 2)
        loss.backward()
        opt.step()
        total += loss.item() * len(crops)
        count += len(crops)
        bar.set_postfix(loss=f"{loss.item():.4f}", vol_s=f"{count / (time.perf_counter() - started):.1f}")
    return total / max(count, 1), count * dist.world / (time.perf_counter() - started)


def validate(model, val_ds, plan: Plan, dist: Dist) -> tuple[float, float]:
    """Mean over validation scans of (MSE over the scan's region, MSE of predicting the training mean).

    Predicting the training mean is predicting 0 in normalised units, so its MSE is mean(x²).
    Scans are padded exactly as ``inference.prepare_input`` pads them for scoring.
    """
    import torch

    model = model.module if hasattr(model, "module") else model  # no DDP collectives on rank 0 alone
    model.eval()
    groups: dict[tuple[int, ...], list[tuple]] = {}
    for i in range(len(val_ds)):
        hu, off = val_ds[i]
        groups.setdefault(val_ds.box_for(hu.shape), []).append((hu, off))
    mse, base = [], []
    bs = max(1, plan.cfg.batch_size)
    with torch.no_grad(), _autocast(dist):
        for box, members in groups.items():
            for start in range(0, len(members), bs):
                chunk = members[start : start + bs]
                offsets = torch.stack([off for _, off in chunk])
                x = _to_device_batch([hu for hu, _ in chunk], offsets, box, plan, dist)
                recon = model(x).float()
                for i, (hu, off) in enumerate(chunk):
                    region = tuple(slice(o, o + n) for o, n in zip(off.tolist(), hu.shape, strict=True))
                    xi, ri = x[i, 0][region], recon[i, 0][region]
                    mse.append(torch.mean((ri - xi) ** 2).item())
                    base.append(torch.mean(xi**2).item())
    return float(sum(mse) / len(mse)), float(sum(base) / len(base))


def _state_dict(model):
    inner = model.module if hasattr(model, "module") else model
    return {k: v.detach().to("cpu", copy=True) for k, v in inner.state_dict().items()}  # a snapshot, not a view


def _input_spec(plan: Plan):
    from ctae_core.inference import InputSpec

    return InputSpec(plan.cfg.spacing_mm, plan.pad_size_zyx, plan.mean_hu, plan.std_hu,
                     z_multiple=_z_multiple(plan.cfg))


def save_state(path: Path, model, opt, plan: Plan, state: dict[str, Any]) -> None:
    """Atomically write the run's checkpoint: latest and best weights, optimiser, progress."""
    from dataclasses import asdict

    from ctae_core.io.checkpoint import save_checkpoint

    save_checkpoint({
        "train_config": plan.cfg.to_dict(), "model_config": asdict(plan.cfg.model),
        "input_spec": _input_spec(plan).to_dict(), "model_state": _state_dict(model),
        "optimizer_state": opt.state_dict(), **state,
    }, path)


def fresh_state() -> dict[str, Any]:
    """Progress of a run that has not finished an epoch."""
    return {"epoch": 0, "best_val_loss": None, "best_model_state": None, "since_best": 0, "baseline": None}


def restore_state(path: Path, model, opt) -> dict[str, Any]:
    """Load a checkpoint into ``model``/``opt``; returns its progress fields (fresh if none)."""
    from ctae_core.io.checkpoint import load_checkpoint, load_state

    fresh = fresh_state()
    if not path.exists():
        return fresh
    data = load_checkpoint(path)
    inner = model.module if hasattr(model, "module") else model
    load_state(inner, data["model_state"], path)
    opt.load_state_dict(data["optimizer_state"])
    logger.info("resuming from %s after epoch %d", path, data["epoch"])
    return {k: data.get(k, v) for k, v in fresh.items()}


def _record(settings: CatalogSettings, run_id: str, epoch: int, row: dict[str, float], state: dict) -> None:
    from data_catalog.runs import record_epoch, update_run

    with connect(settings.catalog_path) as con:
        record_epoch(con, run_id, epoch, row["train_loss"], row["val_loss"], row["lr"], row["epoch_s"], row["vps"])
        update_run(con, run_id, epochs_done=epoch, best_val_loss=state["best_val_loss"],
                   mean_baseline_val_mse=state["baseline"])


def _write_plan(settings: CatalogSettings, run_id: str, plan: Plan, checkpoint: Path) -> None:
    from data_catalog.runs import drop_history_after, update_run

    z, y, x = plan.pad_size_zyx
    cfg = replace(plan.cfg, pad_size_zyx=plan.pad_size_zyx)
    with connect(settings.catalog_path) as con:
        update_run(con, run_id, spacing_mm=cfg.spacing_mm, pad_size_z=z, pad_size_y=y, pad_size_x=x,
                   norm_mean=plan.mean_hu, norm_std=plan.std_hu, checkpoint_path=str(checkpoint),
                   config_json=json.dumps(cfg.to_dict()))
        drop_history_after(con, run_id, plan.start_epoch)


def fit(settings: CatalogSettings, run_id: str, plan: Plan, dist: Dist, model, opt, state, progress: bool) -> dict:
    """Epoch loop: train, validate, record, checkpoint, stop early; returns the final state."""
    import torch

    train_ds, val_ds = plan.train_ds, plan.val_ds
    path = settings.run_dir(run_id) / "checkpoint.pt"
    from ctae_core.config import learning_rate

    for epoch in range(state["epoch"], plan.cfg.epochs):
        started = time.perf_counter()
        for group in opt.param_groups:
            group["lr"] = learning_rate(plan.cfg, epoch)
        train_loss, vps = train_epoch(model, opt, train_ds, plan, dist, epoch, progress)
        stop = torch.zeros(1, device=dist.device)
        if dist.main:
            val_loss, baseline = validate(model, val_ds, plan, dist)
            improved = state["best_val_loss"] is None or val_loss < state["best_val_loss"]
            state.update(epoch=epoch + 1, baseline=baseline, since_best=0 if improved else state["since_best"] + 1)
            if improved:
                state.update(best_val_loss=val_loss, best_model_state=_state_dict(model))
            save_state(path, model, opt, plan, state)
            row = {"train_loss": train_loss, "val_loss": val_loss, "lr": opt.param_groups[0]["lr"],
                   "epoch_s": time.perf_counter() - started, "vps": vps}
            _record(settings, run_id, epoch + 1, row, state)
            logger.info("epoch %d/%d train %.4f val MSE %.4f (predicting the training mean: %.4f) "
                        "%.1f vol/s", epoch + 1, plan.cfg.epochs, train_loss, val_loss, baseline, vps)
            patience = plan.cfg.early_stopping
            stop[0] = float(patience > 0 and state["since_best"] >= patience)
        if dist.world > 1:
            import torch.distributed as tdist

            tdist.broadcast(stop, 0)
        state["epoch"] = epoch + 1
        if stop.item():
            logger.info("early stopping: no better validation loss for %d epochs", plan.cfg.early_stopping)
            break
    return state


def run_training(
    settings: CatalogSettings, run_id: str, cfg, *, resume: bool = False, reuse_split: str | None = None,
    encoder_weights: Path | None = None, device: str = "auto", progress: bool = True,
) -> dict[str, Any]:
    """Train run ``run_id`` end to end; returns a summary (epochs, val MSE, baseline MSE, paths)."""
    from ctae_core.io.volume_store import load_volume
    from data_catalog.runs import update_run
    from jobs.runtime import seed_everything

    dist = _start_dist(device)
    seed_everything(cfg.seed)
    if dist.main:
        cfg, splits, scans = open_run(settings, run_id, cfg, resume, reuse_split)
    _barrier(dist)
    if not dist.main:
        cfg, splits, scans = read_run(settings, run_id)
    plan = _plan(cfg, splits, scans, load_volume)
    model = _build_model(plan, dist, encoder_weights)
    opt = _optimizer(plan.cfg, model)
    path = settings.run_dir(run_id) / "checkpoint.pt"
    state = restore_state(path, model, opt) if resume else fresh_state()
    plan.start_epoch = state["epoch"]
    if dist.world > 1:
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(model, device_ids=[int(dist.device.split(":")[1])] if dist.cuda else None)
    if dist.main:
        _write_plan(settings, run_id, plan, path)
        logger.info("run %s: %s, spacing %.1f mm, pad %s, μ=%.1f HU σ=%.1f HU, device %s×%d", run_id,
                    plan.cfg.preset, plan.cfg.spacing_mm, plan.pad_size_zyx, plan.mean_hu, plan.std_hu,
                    dist.device, dist.world)
    try:
        state = fit(settings, run_id, plan, dist, model, opt, state, progress)
    except BaseException:
        if dist.main:
            with connect(settings.catalog_path) as con:
                update_run(con, run_id, status="failed")
        raise
    return _finish(settings, run_id, plan, dist, state, path)


def _finish(settings: CatalogSettings, run_id: str, plan: Plan, dist: Dist, state: dict, path: Path) -> dict:
    from data_catalog.runs import update_run

    summary = {"run_id": run_id, "epochs": state["epoch"], "best_val_mse": state["best_val_loss"],
               "mean_baseline_val_mse": state["baseline"], "checkpoint": str(path)}
    if not dist.main:
        return summary
    with connect(settings.catalog_path) as con:
        update_run(con, run_id, status="trained")
    ratio = (state["best_val_loss"] or 0.0) / max(state["baseline"] or 1e-12, 1e-12)
    logger.info("run %s trained: validation MSE %.4f vs %.4f predicting the training mean (ratio %.3f)",
                run_id, state["best_val_loss"], state["baseline"], ratio)
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
    no_progress: NoProgressOption = False,
) -> None:
    """Train the 3D autoencoder on the ingested scans (split, normalise, pad, fit, checkpoint)."""
    from jobs.runtime import job_run

    settings = settings_from(catalog, store)
    try:
        cfg = build_config(preset_name, epochs=epochs, batch_size=batch_size, lr=lr,
                           lr_schedule=lr_schedule, spacing_mm=spacing,
                           pad_size_zyx=_parse_pad(pad_size), latent=latent, depth=depth, seed=seed,
                           early_stopping=early_stopping)
    except ValueError as err:
        raise typer.BadParameter(str(err)) from err
    args = {"run": run, "preset": preset_name, "resume": resume, "config": cfg.to_dict()}
    from ctae_core.data import SplitError
    from ctae_core.errors import CheckpointError
    from data_catalog.runs import RunError

    # Under torchrun only rank 0 touches the catalog's job log; other ranks keep off the file.
    primary = int(os.environ.get("RANK", "0")) == 0
    try:
        with job_run(settings, "train", args) if primary else nullcontext({}) as counts:
            counts.update(run_training(settings, run, cfg, resume=resume, reuse_split=reuse_split,
                                       encoder_weights=encoder_weights, device=device,
                                       progress=not no_progress))
    except (RunError, SplitError, CheckpointError) as err:
        typer.secho(f"ctae train: {err}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from err
    typer.echo(json.dumps(counts, default=str))


def register(app: typer.Typer) -> None:
    """Add ``ctae train`` to the CLI."""
    app.command("train")(train_command)


def main() -> None:
    """``python -m jobs.train …`` (what ``torchrun`` launches): the train command alone."""
    from jobs.runtime import configure_logging

    configure_logging()
    standalone = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    standalone.command()(train_command)
    standalone()


if __name__ == "__main__":
    main()
