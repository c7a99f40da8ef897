"""Two-process CPU DDP (gloo) through ``torchrun -m jobs.train`` trains like one process.

Every optimiser step sees the whole training split: one process with batches of 12 scans,
DDP with 6 on each of two ranks (gradients averaged). Placement of each crop depends only on
seed, epoch and index, so the two runs differ only by batch-norm statistics taken per rank
(6 instead of 12 scans): their validation curves agree within a few percent. Both run as
subprocesses with one thread per process (2 cores: threads of one process fight otherwise).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ctae_core.io.volume_store import save_volume
from ctae_core.phantoms import torso
from data_catalog import connect
from data_catalog.runs import get_run, read_splits, train_history

ROOT = Path(__file__).resolve().parents[2]
EPOCHS = 6  # the validation MSE falls by a fifth in six epochs on one process and on two
PER_RANK_BATCH = 18
N_SCANS = 14  # split 12 train / 1 val / 1 test: one step of 12 scans × 2 tiny cubes per epoch


def _cohort(settings, n: int) -> None:
    """``n`` int16 chest-like phantoms in the store and in ``scans`` (tests may run SQL)."""
    rng = np.random.default_rng(11)
    with connect(settings.catalog_path) as con:
        for i in range(n):
            shape = (20 + 4 * (i % 3), 32, 32)
            vol = torso(shape, rng)
            path = save_volume(vol, settings.volumes_dir / f"d{i:02d}.npy")
            con.execute(
                "INSERT INTO scans (scan_id, source_kind, source_root, source_path, "
                "fingerprint, content_hash, spacing_mm, size_z, size_y, size_x, "
                "pixel_count, volume_path) VALUES (?, 'nifti', '/src', ?, 'f', 'h', 3.0, "
                "?, ?, ?, ?, ?)",
                [f"d{i:02d}", f"d{i:02d}.nii", *shape, vol.size, str(path)],
            )


def _train_args(settings, run: str, batch: int) -> list[str]:
    return [
        "--run-name",
        run,
        "--catalog",
        str(settings.catalog_path),
        "--store",
        str(settings.store_dir),
        "--preset",
        "tiny_dae",
        "--epochs",
        str(EPOCHS),
        "--validate-from",  # every epoch: the test compares the whole validation curves
        "0",
        "--batch-size",
        str(batch),
        "--device",
        "cpu",
        "--no-progress",
    ]


def _train(settings, run: str, processes: int) -> None:
    """``python -m jobs.train`` alone, or under ``torchrun`` with ``processes`` ranks."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    launcher = ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(processes)]
    batch = PER_RANK_BATCH * (2 // processes)
    command = [
        sys.executable,
        *(launcher if processes > 1 else []),
        "-m",
        "jobs.train",
        *_train_args(settings, run, batch),
    ]
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def _history(settings, run: str) -> tuple[dict, list[dict], dict]:
    with connect(settings.catalog_path, read_only=True) as con:
        return get_run(con, run), train_history(con, run), read_splits(con, run)


@pytest.mark.slow
def test_two_process_gloo_ddp_matches_a_single_process_run(settings):
    _cohort(settings, N_SCANS)
    _train(settings, "single", processes=1)
    _train(settings, "ddp", processes=2)

    run_1, hist_1, split_1 = _history(settings, "single")
    run_2, hist_2, split_2 = _history(settings, "ddp")
    assert split_1 == split_2, "same seed, same split"
    assert run_2["status"] == "trained" and run_2["epochs_done"] == EPOCHS
    assert [h["epoch"] for h in hist_2] == list(range(1, EPOCHS + 1)), "rank 0 alone wrote history"
    assert sorted(p.name for p in (settings.run_dir("ddp")).iterdir()) == ["checkpoint.pt"]

    val_1 = np.array([h["val_loss"] for h in hist_1])
    val_2 = np.array([h["val_loss"] for h in hist_2])
    assert val_2[-1] < 0.9 * val_2[0], f"DDP did not train: {val_2}"
    assert val_1[-1] < 0.9 * val_1[0], f"single process did not train: {val_1}"
    np.testing.assert_allclose(val_2, val_1, rtol=0.08, err_msg="DDP and one process diverge")
    assert run_2["best_val_loss"] == pytest.approx(run_1["best_val_loss"], rel=0.08)
