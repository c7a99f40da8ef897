"""Training throughput: steps/s and volumes/s of one optimiser step, its FLOPs, and the fraction
of the machine's measured float32 matmul rate (the same-run baseline) that it reaches.

Presets ``tiny_dae`` and ``small_dae`` (the denoising U-Net, on 32³ / 64³ cubes at 3 mm) and
``tiny`` (the Med3D autoencoder, the default until stop 36: 16-slice slabs × the demo's padded Y × X
at 6 mm) on the CPU, each at its training box; "volumes" are the training inputs (cubes or
slabs) — the epoch rows turn them into seconds per demo epoch. ``thesis`` (Med3D ResNet34,
latent 1024, 273×87×87, batch 10) runs on CUDA in bf16 where a GPU is present; without one
its FLOPs per step are still counted (on the meta device, no compute).

    .venv/bin/python benchmarks/bench_train.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEMO_YX_3MM = 149  # the demo cohort's largest in-plane extent at 3 mm: it sets the padded Y, X
THESIS_EPOCHS, THESIS_SCANS = 1600, 6466  # Table 3.1, and the thesis's training split
DEMO_TRAIN_SCANS = 288  # 80 % of the demo's 360 scans
TRAIN_BUDGET_S = 180  # every epoch of the demo's training in < 3 min


def matmul_gflops(device: str = "cpu", n: int = 2048, repeats: int = 5) -> float:
    """Measured float32 matmul rate (GFLOP/s) of this machine: the baseline."""
    import torch

    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        _sync(device)
        started = time.perf_counter()
        a @ b
        _sync(device)
        best = min(best, time.perf_counter() - started)
    return 2 * n**3 / best / 1e9


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def training_box(name: str) -> tuple[int, int, int]:
    """The preset's training input (Z, Y, X) on the demo cohort."""
    from ctae_core.config import preset
    from ctae_core.padding import round_up

    cfg = preset(name)
    if cfg.patch_size is not None:
        return (cfg.patch_size,) * 3
    if cfg.pad_size_zyx is not None and cfg.slab_z is None:
        return tuple(cfg.pad_size_zyx)
    yx = round_up([round(DEMO_YX_3MM * 3.0 / cfg.spacing_mm)], 8)[0]
    return (cfg.slab_z, yx, yx)


def _step(model, opt, x, autocast):
    import torch

    opt.zero_grad(set_to_none=True)
    with autocast:
        loss = torch.mean((model(x).float() - x) ** 2)
    loss.backward()
    opt.step()


def step_flops(name: str, batch: int | None = None) -> float:
    """FLOPs of one training step (forward + backward) at the preset's box (and batch size)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from ctae_core.config import preset
    from ctae_core.model import build_model

    cfg = preset(name)
    with torch.device("meta"):
        model = build_model(cfg.model)
        x = torch.empty(batch or cfg.batch_size, 1, *training_box(name))
    with FlopCounterMode(display=False) as counter:
        torch.mean((model(x) - x) ** 2).backward()
    return float(counter.get_total_flops())


def steps_per_second(name: str, device: str, steps: int, channels_last: bool = True,
                     batch: int | None = None) -> float:
    """Measured optimiser steps/s (one warm-up step not timed)."""
    import contextlib

    import torch

    from ctae_core.config import preset
    from ctae_core.model import build_model

    cfg = preset(name)
    torch.manual_seed(0)
    model = build_model(cfg.model).to(device)
    x = torch.randn(batch or cfg.batch_size, 1, *training_box(name), device=device)
    autocast = contextlib.nullcontext()
    if channels_last:  # what jobs/train.py does on every device
        model = model.to(memory_format=torch.channels_last_3d)
        x = x.contiguous(memory_format=torch.channels_last_3d)
    if device.startswith("cuda"):
        autocast = torch.autocast("cuda", dtype=torch.bfloat16)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    _step(model, opt, x, autocast)
    _sync(device)
    started = time.perf_counter()
    for _ in range(steps):
        _step(model, opt, x, autocast)
    _sync(device)
    return steps / (time.perf_counter() - started)


def _rows(name: str, device: str, steps: int, base_gflops: float, batch: int | None = None) -> list[dict]:
    from ctae_core.config import preset

    batch = batch or preset(name).batch_size
    rate = steps_per_second(name, device, steps, batch=batch)
    flops = step_flops(name, batch)
    achieved = rate * flops / 1e9
    label = f"{name} {'x'.join(map(str, training_box(name)))} b{batch} {device}"
    rows = [
        {"figure": f"{label} steps/s", "value": rate, "unit": "steps/s"},
        {"figure": f"{label} volumes/s", "value": rate * batch, "unit": "vol/s"},
        {"figure": f"{label} GFLOP per step", "value": flops / 1e9, "unit": "GFLOP"},
        {"figure": f"{label} achieved rate vs matmul", "value": achieved, "unit": "GFLOP/s",
         "baseline": base_gflops, "ratio": achieved / base_gflops},
    ]
    if name == "thesis" and device.startswith("cuda"):  # the thesis's schedule on this one GPU
        hours = THESIS_EPOCHS * THESIS_SCANS / (rate * batch) / 3600
        rows.append({"figure": f"thesis {THESIS_EPOCHS} epochs of {THESIS_SCANS} scans, projected",
                     "value": hours, "unit": "h", "target": 8.0, "ratio": hours / 8.0})
    if name in ("tiny_dae", "tiny") and device == "cpu":
        cfg = preset(name)
        if name == "tiny_dae":
            contiguous = steps_per_second(name, device, steps, channels_last=False, batch=batch)
            rows.append({"figure": f"{label} channels_last_3d vs contiguous", "value": rate,
                         "unit": "steps/s", "baseline": contiguous, "ratio": rate / contiguous})
        inputs = DEMO_TRAIN_SCANS * (cfg.patches_per_scan if cfg.patch_size else 1)
        epoch_s = inputs / (rate * batch)
        budget = TRAIN_BUDGET_S / cfg.epochs
        rows.append({"figure": f"{name} epoch of {DEMO_TRAIN_SCANS} demo scans (compute only)",
                     "value": epoch_s, "unit": "s", "target": budget, "ratio": epoch_s / budget})
    return rows


def main(quick: bool = False) -> list[dict]:
    """Benchmark rows for benchmarks/run_all.py."""
    import torch

    rows: list[dict] = []
    cpu_gflops = matmul_gflops("cpu")
    rows.append({"figure": "float32 matmul 2048² (cpu)", "value": cpu_gflops, "unit": "GFLOP/s"})
    rows += _rows("tiny_dae", "cpu", 2 if quick else 10, cpu_gflops)
    rows += _rows("tiny", "cpu", 2 if quick else 10, cpu_gflops)
    rows += _rows("small_dae", "cpu", 1 if quick else 5, cpu_gflops, batch=2 if quick else None)
    if torch.cuda.is_available():
        gpu_gflops = matmul_gflops("cuda", 8192)
        card = torch.cuda.get_device_name(0)
        rows.append({"figure": f"float32 matmul 8192² ({card})", "value": gpu_gflops, "unit": "GFLOP/s"})
        rows += _rows("thesis", "cuda", 5 if quick else 20, gpu_gflops)
        rows += _rows("small_dae", "cuda", 5 if quick else 20, gpu_gflops, batch=32)
    else:
        rows.append({"figure": "thesis 273x87x87 b10 GFLOP per step (no GPU here: not timed)",
                     "value": step_flops("thesis") / 1e9, "unit": "GFLOP"})
    return [{"benchmark": "train", "target": None, "baseline": None, "ratio": None, **r} for r in rows]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few steps per preset (< 60 s)")
    args = parser.parse_args()
    for row in main(args.quick):
        print(json.dumps(row))
