"""Scans scored per second: the `ctae score` batch path (load the stored int16 scan, resample,
normalise, pad, reconstruct, MSE / MSE_m / error facts, write recon and |error| volumes).

Presets ``tiny``, ``tiny_dae`` and ``small_dae`` on the CPU; ``thesis`` (Med3D ResNet34, latent 1024, 87×87×273)
on CUDA where present (on 2 CPU cores it takes ~30 s a scan, too slow to be worth a row).
Without --quick each figure is the best of two passes (the machines are shared and noisy). The baseline, measured in
the same run, is the naive path: one scan per forward pass in PyTorch's default (contiguous)
memory format; the job batches scans and runs the model in channels_last_3d. Ratio = job over
baseline; the batch-1 channels_last figure is printed to separate the two effects. Untrained weights: the cost does not depend on them. Catalog
writes (one short transaction per batch, ~30 ms) are not included.

    .venv/bin/python benchmarks/bench_score.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SCAN_SHAPE_3MM = (80, 87, 87)  # a cardiac CT at the thesis's 3 mm (its pad is 273×87×87)


def _phantom(rng: np.random.Generator, shape: tuple[int, int, int]) -> np.ndarray:
    z, y, x = np.ogrid[: shape[0], : shape[1], : shape[2]]
    vol = np.full(shape, -1024, dtype=np.int16)
    body = ((y - shape[1] / 2) / (0.42 * shape[1])) ** 2 + ((x - shape[2] / 2) / (0.45 * shape[2])) ** 2 <= 1
    vol[np.broadcast_to(body, shape)] = 40
    return vol + (rng.normal(0, 10, shape).astype(np.int16) * (vol > -1024))


def _store_scans(folder: Path, n: int) -> list[SimpleNamespace]:
    from ctae_core.io.volume_store import save_volume

    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        path = save_volume(_phantom(rng, SCAN_SHAPE_3MM), folder / f"b{i:03d}.npy")
        rows.append(SimpleNamespace(scan_id=f"b{i:03d}", volume_path=str(path), spacing_mm=3.0,
                                    split="test"))
    return rows


def _model_and_spec(name: str, device: str):
    from ctae_core.config import preset
    from ctae_core.inference import InputSpec
    from ctae_core.model import build_model
    from ctae_core.padding import round_up

    cfg = preset(name)
    unet = cfg.model.architecture == "dae_unet"
    spatial = cfg.model.bottleneck == "spatial" or unet
    if spatial:
        scale = 3.0 / cfg.spacing_mm
        pad = round_up([round(n * scale) for n in SCAN_SHAPE_3MM], 8)
    else:
        pad = cfg.pad_size_zyx
    spec = InputSpec.from_dict({"spacing_mm": cfg.spacing_mm, "pad_size_zyx": list(pad),
                                "norm_mean_hu": -500.0, "norm_std_hu": 500.0,
                                "z_multiple": 8 if spatial else None, "fit_box": unet,
                                "window": cfg.window})
    return build_model(cfg.model).eval().to(device), spec


def scans_per_second(name: str, rows: list, batch: int, device: str, out: Path,
                     channels_last: bool = True) -> float:
    """Throughput of jobs.score's batch path over ``rows`` (one warm-up batch not timed)."""
    import torch

    from jobs.score_options import ScoreOptions
    from jobs.score_workers import score_batch

    model, spec = _model_and_spec(name, device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last_3d)
    options = ScoreOptions(run_id="bench", batch_size=batch, device=device, show_progress=False,
                           channels_last=channels_last)
    score_batch(rows[:batch], model, spec, options, device, out)  # warm-up
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    started = time.perf_counter()
    for start in range(0, len(rows), batch):
        records, failures = score_batch(rows[start:start + batch], model, spec, options, device, out)
        if failures:
            raise RuntimeError(f"benchmark scans failed: {failures}")
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return len(rows) / (time.perf_counter() - started)


def _cases(quick: bool, cuda: bool) -> list[tuple[str, str, int, int]]:
    """(preset, device, scans, batch) to measure."""
    cases = [("tiny_dae", "cpu", 8 if quick else 24, 4), ("tiny", "cpu", 8 if quick else 24, 4),
             ("small_dae", "cpu", 4 if quick else 8, 4)]
    if cuda:
        cases.append(("thesis", "cuda", 16 if quick else 40, 8))
    return cases


def main(quick: bool = False) -> list[dict]:
    import torch

    cuda = torch.cuda.is_available()
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, device, n, batch in _cases(quick, cuda):
            scans = _store_scans(Path(tmp) / "volumes", n)
            out = Path(tmp) / "run"
            passes = 1 if quick else 2
            job = max(scans_per_second(name, scans, batch, device, out) for _ in range(passes))
            naive = max(scans_per_second(name, scans, 1, device, out, channels_last=False)
                        for _ in range(passes))
            single_cl = float("nan") if quick else scans_per_second(name, scans, 1, device, out)
            rows.append({"benchmark": "score", "figure": f"scans/s {name} {device} batch {batch}",
                         "value": job, "unit": "scans/s", "target": None,
                         "baseline": naive, "ratio": job / naive})
            print(f"{name:7s} {device:5s} {n:3d} scans {SCAN_SHAPE_3MM} @3 mm: job (batch {batch}, "
                  f"channels_last) {job:.2f} scans/s; baseline (batch 1, contiguous) {naive:.2f}; "
                  f"batch 1 channels_last {single_cl:.2f}; ratio {job / naive:.2f}", flush=True)
    if not cuda:
        print("no CUDA here: the thesis preset on a GPU was not measured")
    out_dir = ROOT / "benchmarks" / "out"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "bench_score.json").write_text(json.dumps(rows, indent=2))
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer scans, < 60 s")
    main(parser.parse_args().quick)
