"""Fit the autoencoder: a plan built whole, one readable epoch loop (nanoGPT's), pure torch.

No catalog and no files: the job hands in the scans and a volume loader, and receives every
finished epoch through ``on_epoch`` (where it checkpoints and records). Data order and placement
depend only on seed, epoch and index, so a resumed run continues on exactly the same curve.
Under DDP every rank trains; rank 0 alone validates and reports.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler
from tqdm import tqdm

from ctae_core.config import TrainConfig, learning_rate
from ctae_core.data import (
    ScanItem,
    VolumeDataset,
    assemble_batch,
    collate_crops,
    normalisation_stats,
)
from ctae_core.inference import InputSpec, forward_volume, load_state
from ctae_core.model import DOWNSAMPLING, Autoencoder, build_model
from ctae_core.padding import round_up
from ctae_core.unet import coarse_noise

StateDict = dict[str, torch.Tensor]


@dataclass(frozen=True)
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


@dataclass(frozen=True)
class Plan:
    """What a run trains on: the resolved config, the split, the datasets and μ/σ (HU)."""

    cfg: TrainConfig
    splits: dict[str, str]
    pad_size_zyx: tuple[int, int, int]
    mean_hu: float
    std_hu: float
    train_ds: VolumeDataset
    val_ds: VolumeDataset

    @property
    def input_spec(self) -> InputSpec:
        """How the trained model wants its input (stored in the checkpoint for scoring)."""
        return InputSpec(self.cfg.spacing_mm, self.pad_size_zyx, self.mean_hu, self.std_hu,
                         z_multiple=z_multiple(self.cfg), fit_box=fit_box(self.cfg),
                         window=self.cfg.window)


@dataclass
class TrainingState:
    """Progress of a run: epochs done, the best validation loss and its weights, patience."""

    epoch: int = 0
    best_val_loss: float | None = None
    best_model_state: StateDict | None = None
    since_best: int = 0
    baseline: float | None = None

    def as_checkpoint(self) -> dict[str, Any]:
        """The checkpoint's progress fields."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_checkpoint(cls, data: dict[str, Any]) -> TrainingState:
        """The progress fields of a loaded checkpoint (defaults where an older one lacks them)."""
        fresh = cls()
        return cls(**{f.name: data.get(f.name, getattr(fresh, f.name)) for f in fields(cls)})


@dataclass(frozen=True)
class EpochReport:
    """One finished epoch as rank 0 saw it."""

    epoch: int
    train_loss: float
    val_loss: float | None
    """None: the epoch was not validated (``TrainConfig.validate_from``)."""
    baseline: float | None
    lr: float
    epoch_s: float
    volumes_per_s: float


class PlanError(ValueError):
    """The split leaves nothing to train or validate on."""


def fully_convolutional(cfg: TrainConfig) -> bool:
    """The model takes any input whose sides are multiples of 8 (U-Net, or a spatial latent)."""
    return cfg.model.architecture == "dae_unet" or cfg.model.bottleneck == "spatial"


def fit_box(cfg: TrainConfig) -> bool:
    """The U-Net is scored in a box fitted to each scan (no frame of padded air)."""
    return cfg.model.architecture == "dae_unet"


def z_multiple(cfg: TrainConfig) -> int | None:
    """Fully convolutional runs pad Z per scan to a multiple of the encoder's stride."""
    return DOWNSAMPLING if fully_convolutional(cfg) else None


def pad_size(cfg: TrainConfig, splits: dict[str, str], scans: dict[str, ScanItem]) -> tuple[int, int, int]:
    """The configured pad size, else the largest scan at the model spacing (multiple of 8 if spatial)."""
    if cfg.pad_size_zyx is not None:
        return tuple(cfg.pad_size_zyx)  # type: ignore[return-value]
    scale = [scans[k].spacing_mm / cfg.spacing_mm for k in splits]
    sizes = [scans[k].size_zyx for k in splits]
    largest = [max(max(1, round(s[a] * f)) for s, f in zip(sizes, scale, strict=True)) for a in range(3)]
    return round_up(largest, 8) if fully_convolutional(cfg) else tuple(largest)  # type: ignore[return-value]


def make_plan(
    cfg: TrainConfig, splits: dict[str, str], scans: dict[str, ScanItem],
    loader: Callable[[str], np.ndarray],
) -> Plan:
    """Resolve pad size, datasets and μ/σ of a run.

    Raises:
        PlanError: no train or no val scans.
    """
    box = pad_size(cfg, splits, scans)
    cfg = replace(cfg, model=replace(cfg.model, input_size_zyx=box))

    def items(split: str) -> list[ScanItem]:  # in the catalog's order (``scans``'), not by id
        return [item for k, item in scans.items() if splits.get(k) == split]

    train_box = box if cfg.slab_z is None else (min(cfg.slab_z, box[0]), box[1], box[2])
    if cfg.patch_size is not None:
        train_box = (cfg.patch_size,) * 3
    # cache resampled volumes in memory (small at coarse spacings); at the stored spacing the
    # memory-mapped store is the cache, and thousands of 3 mm scans would not fit in RAM
    cache = any(abs(scans[k].spacing_mm - cfg.spacing_mm) > 1e-6 for k in splits)
    train = VolumeDataset(items("train"), loader, cfg.spacing_mm, train_box, cfg.slab_z, cfg.seed,
                          cache=cache, patch=cfg.patch_size,
                          repeats=cfg.patches_per_scan if cfg.patch_size else 1)
    val = VolumeDataset(items("val"), loader, cfg.spacing_mm, box, None, cfg.seed,
                        random_placement=False, cache=cache, z_multiple=z_multiple(cfg),
                        fit_box=fit_box(cfg))
    if len(train) == 0 or len(val) == 0:
        raise PlanError("the split has no train or no val scans left; ingest more scans")
    mean_hu, std_hu = normalisation_stats(train.volume(i) for i in range(len(train.items)))
    return Plan(cfg, splits, box, mean_hu, std_hu, train, val)


def new_model(cfg: TrainConfig) -> Autoencoder:
    """The run's autoencoder with seeded initial weights."""
    torch.manual_seed(cfg.seed)
    return build_model(cfg.model)


def place(model: nn.Module, dist: Dist) -> nn.Module:
    """Move the model to its device as channels-last 3D (faster with cuDNN, and ~2-3x faster on
    the CPU too, oneDNN)."""
    return model.to(dist.device, memory_format=torch.channels_last_3d)


def param_groups(cfg: TrainConfig, model: nn.Module) -> list[dict[str, Any]]:
    """The parameters in groups that carry their multiple of the rate (``lr_factor``): one
    group, or two when the U-Net's output layer learns faster (``cfg.output_lr_factor``)."""
    if cfg.output_lr_factor == 1.0:
        return [{"params": list(model.parameters()), "lr_factor": 1.0}]
    head = list(unwrap(model).out.parameters())
    in_head = {id(p) for p in head}
    return [{"params": [p for p in model.parameters() if id(p) not in in_head], "lr_factor": 1.0},
            {"params": head, "lr_factor": cfg.output_lr_factor}]


def new_optimizer(cfg: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    """SGD with momentum (the thesis) or Adam, as the config says, over ``param_groups``: each
    group's rate is its ``lr_factor`` × the schedule's (``train_epoch`` sets it every step)."""
    groups = param_groups(cfg, model)
    for group in groups:
        group["lr"] = cfg.lr * group["lr_factor"]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return torch.optim.Adam(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside a DDP wrapper (or the model itself)."""
    return model.module if hasattr(model, "module") else model


def snapshot(model: nn.Module) -> StateDict:
    """The model's weights copied to the CPU: a snapshot, not a view."""
    return {k: v.detach().to("cpu", copy=True) for k, v in unwrap(model).state_dict().items()}


def checkpoint_payload(model: nn.Module, opt: torch.optim.Optimizer, plan: Plan,
                       state: TrainingState) -> dict[str, Any]:
    """What a run's checkpoint holds: configs, input spec, latest and best weights, optimiser,
    progress."""
    return {
        "train_config": plan.cfg.to_dict(), "model_config": asdict(plan.cfg.model),
        "input_spec": plan.input_spec.to_dict(), "model_state": snapshot(model),
        "optimizer_state": opt.state_dict(), **state.as_checkpoint(),
    }


def restore(data: dict[str, Any], model: nn.Module, opt: torch.optim.Optimizer,
            source: str) -> TrainingState:
    """Load a checkpoint's weights and optimiser into ``model``/``opt``; returns its progress."""
    load_state(unwrap(model), data["model_state"], source)
    opt.load_state_dict(data["optimizer_state"])
    return TrainingState.from_checkpoint(data)


def _batches(train_ds: VolumeDataset, cfg: TrainConfig, dist: Dist, epoch: int) -> DataLoader:
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


def _autocast(dist: Dist) -> contextlib.AbstractContextManager:
    if dist.cuda:  # bf16 autocast on GPUs only; CPU stays float32 and deterministic
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _to_device(crops: list[torch.Tensor], offsets: torch.Tensor, box: tuple[int, int, int],
               plan: Plan, dist: Dist) -> torch.Tensor:
    x = assemble_batch(crops, offsets, box, plan.mean_hu, plan.std_hu, dist.device)
    return x.contiguous(memory_format=torch.channels_last_3d)


def _noise(shape: tuple[int, ...], cfg: TrainConfig, seeds: torch.Tensor | None, epoch: int, step: int,
           dist: Dist) -> torch.Tensor:
    """The batch's coarse input noise: per cube from its own seed (the same on one rank or many,
    and on resume), else from seed, epoch, step and rank."""
    if seeds is None:
        gen = torch.Generator().manual_seed(((cfg.seed * 1_000_003 + epoch) * 100_003 + step) * 131 + dist.rank)
        return coarse_noise(shape, cfg.noise_std, cfg.noise_cell, gen, dist.device)
    one = (1, *shape[1:])
    return torch.cat([coarse_noise(one, cfg.noise_std, cfg.noise_cell,
                                   torch.Generator().manual_seed(int(s)), dist.device) for s in seeds])


def train_epoch(model: nn.Module, opt: torch.optim.Optimizer, plan: Plan, dist: Dist, epoch: int,
                progress: bool) -> tuple[float, float]:
    """One pass over the training scans; returns (mean train loss, volumes/s)."""
    model.train()
    total, count, started = 0.0, 0, time.perf_counter()
    bar = tqdm(_batches(plan.train_ds, plan.cfg, dist, epoch), desc=f"epoch {epoch + 1}/{plan.cfg.epochs}",
               disable=not (progress and dist.main), leave=False, unit="batch")
    cfg = plan.cfg
    steps = max(len(bar), 1)
    for step, (crops, offsets, *seeds) in enumerate(bar):
        for group in opt.param_groups:
            group["lr"] = learning_rate(cfg, epoch, step / steps) * group.get("lr_factor", 1.0)
        x = _to_device(crops, offsets, plan.train_ds.box_zyx, plan, dist)  # type: ignore[arg-type]
        noisy = x
        if cfg.noise_std > 0:  # denoising: coarse noise in, the clean volume is the target
            noisy = x + _noise(tuple(x.shape), cfg, seeds[0] if seeds else None, epoch, step, dist)
            noisy = noisy.contiguous(memory_format=torch.channels_last_3d)
        opt.zero_grad(set_to_none=True)
        with _autocast(dist):
            loss = torch.mean((model(noisy).float() - x) ** 2)
        loss.backward()
        opt.step()
        total += loss.item() * len(crops)
        count += len(crops)
        bar.set_postfix(loss=f"{loss.item():.4f}", vol_s=f"{count / (time.perf_counter() - started):.1f}")
    return total / max(count, 1), count * dist.world / (time.perf_counter() - started)


def validate(model: nn.Module, plan: Plan, dist: Dist) -> tuple[float, float]:
    """Mean over validation scans of (MSE over the scan's region, MSE of predicting the training mean).

    Predicting the training mean is predicting 0 in normalised units, so its MSE is mean(x²).
    Scans are padded exactly as ``inference.prepare_input`` pads them for scoring.
    """
    model = unwrap(model)  # no DDP collectives on rank 0 alone
    model.eval()
    val_ds = plan.val_ds
    groups: dict[tuple[int, int, int], list[tuple[torch.Tensor, torch.Tensor]]] = {}
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
                x = _to_device([hu for hu, _ in chunk], offsets, box, plan, dist)
                recon = forward_volume(model, x, plan.cfg.window).float()
                for i, (hu, off) in enumerate(chunk):
                    region = tuple(slice(o, o + n) for o, n in zip(off.tolist(), hu.shape, strict=True))
                    xi, ri = x[i, 0][region], recon[i, 0][region]
                    mse.append(torch.mean((ri - xi) ** 2).item())
                    base.append(torch.mean(xi**2).item())
    return float(sum(mse) / len(mse)), float(sum(base) / len(base))


def validated(cfg: TrainConfig, epoch: int) -> bool:
    """Whether 0-based ``epoch`` is validated: it ends at or after ``cfg.validate_from`` of the
    schedule, or it is the last."""
    return epoch + 1 >= cfg.epochs or (epoch + 1) / cfg.epochs >= cfg.validate_from


def fit(
    model: nn.Module, opt: torch.optim.Optimizer, plan: Plan, dist: Dist, state: TrainingState,
    on_epoch: Callable[[TrainingState, EpochReport], None], progress: bool = True,
) -> tuple[TrainingState, bool]:
    """The epoch loop: train, validate (rank 0; the epochs ``validated`` names), report, stop
    early (counting validated epochs).

    ``on_epoch(state, report)`` runs on rank 0 after every epoch (checkpoint, catalog rows,
    log line). Returns the final state and whether early stopping ended the run.
    """
    cfg = plan.cfg
    for epoch in range(state.epoch, cfg.epochs):
        started = time.perf_counter()
        train_loss, vps = train_epoch(model, opt, plan, dist, epoch, progress)  # sets lr every step
        stop = torch.zeros(1, device=dist.device)
        if dist.main:
            val_loss = None
            state.epoch = epoch + 1
            if validated(cfg, epoch):
                val_loss, state.baseline = validate(model, plan, dist)
                improved = state.best_val_loss is None or val_loss < state.best_val_loss
                state.since_best = 0 if improved else state.since_best + 1
                if improved:
                    state.best_val_loss, state.best_model_state = val_loss, snapshot(model)
            on_epoch(state, EpochReport(epoch + 1, train_loss, val_loss, state.baseline,
                                        opt.param_groups[0]["lr"], time.perf_counter() - started, vps))
            stop[0] = float(cfg.early_stopping > 0 and state.since_best >= cfg.early_stopping)
        if dist.world > 1:
            torch.distributed.broadcast(stop, 0)
        state.epoch = epoch + 1
        if stop.item():
            return state, True
    return state, False
