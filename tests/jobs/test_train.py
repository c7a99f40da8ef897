"""`ctae train` end to end on a tiny synthetic catalog: split, μ/σ, history, resume, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from ctae_core.data import assign_splits
from ctae_core.inference import prepare_input, reconstruct
from ctae_core.io.checkpoint import load_checkpoint, load_normal_error, load_run_model
from ctae_core.io.volume_store import save_volume
from ctae_core.phantoms import torso
from data_catalog import CatalogSettings, connect
from data_catalog.runs import get_run, read_splits, train_history
from jobs.cli import app

runner = CliRunner()


def add_scan(con, settings, scan_id, hu, root="/src", source_path=None) -> None:
    """Write one int16 volume to the store and its row into `scans` (tests may run SQL)."""
    path = save_volume(hu, settings.volumes_dir / f"{scan_id}.npy")
    con.execute(
        "INSERT INTO scans (scan_id, source_kind, source_root, source_path, fingerprint, "
        "content_hash, spacing_mm, size_z, size_y, size_x, pixel_count, volume_path) "
        "VALUES (?, 'nifti', ?, ?, 'f', 'h', 3.0, ?, ?, ?, ?, ?)",
        [scan_id, root, source_path or f"{scan_id}.nii", *hu.shape, hu.size, str(path)],
    )


def add_scans(settings, sizes, seed=0) -> list[str]:
    """``add_scan`` of a torso phantom of each size."""
    rng = np.random.default_rng(seed)
    ids = [f"s{seed}-{i:03d}" for i in range(len(sizes))]
    with connect(settings.catalog_path) as con:
        for scan_id, shape in zip(ids, sizes, strict=True):
            add_scan(con, settings, scan_id, torso(shape, rng))
    return ids


COHORT = [(24 + 4 * (i % 4), 30 + (i % 3), 32) for i in range(10)] + [(56, 32, 32)]


def train(settings, run, *extra):
    # one thread unless a test says: the default follows the machine's load, and a float sum
    # split over another number of threads differs in its last digits (a busy CI run's resumed
    # curve missed the uninterrupted one by 1.4e-5)
    threads = [] if "--threads" in extra else ["--threads", "1"]
    args = ["train", "--catalog", str(settings.catalog_path), "--store", str(settings.store_dir),
            "--run", run, "--preset", "tiny_dae", "--no-progress", "--device", "cpu", *threads,
            *extra]
    return runner.invoke(app, args)


def test_tiny_run_trains_and_records_everything(settings):
    add_scans(settings, COHORT)
    result = train(settings, "r1", "--epochs", "4", "--batch-size", "3", "--normal-error-scans", "32")
    assert result.exit_code == 0, result.output
    with connect(settings.catalog_path, read_only=True) as con:
        run = get_run(con, "r1")
        splits = read_splits(con, "r1")
        history = train_history(con, "r1")
    assert run["status"] == "trained" and run["epochs_done"] == 4 and run["spacing_mm"] == 3.0
    # the largest scan, 56×32×32 at the stored 3 mm; the U-Net rounds up to 8s
    assert (run["pad_size_z"], run["pad_size_y"], run["pad_size_x"]) == (56, 32, 32)
    assert sorted(splits.values()).count("train") == 9 and len(splits) == 11
    assert [h["epoch"] for h in history] == list(range(1, 5))
    # the preset validates from half its schedule: epoch 1 of 4 is not validated
    assert history[0]["val_loss"] is None and all(h["val_loss"] > 0 for h in history[1:])
    assert run["best_val_loss"] == pytest.approx(min(h["val_loss"] for h in history[1:]))
    assert run["best_val_loss"] < 0.9 * run["mean_baseline_val_mse"]  # below predicting the mean
    assert -1024 < run["norm_mean"] < 30 and run["norm_std"] > 100
    assert json.loads(run["config_json"])["pad_size_zyx"] == [56, 32, 32]

    model, spec = load_run_model(run["checkpoint_path"])
    assert spec.pad_size_zyx == (56, 32, 32) and spec.norm_mean_hu == run["norm_mean"]
    normal = load_normal_error(run["checkpoint_path"])  # fitted after training on the 9 training scans
    assert normal is not None and normal.n_scans == 9
    assert 0 < min(map(min, normal.level_hu)) <= max(map(max, normal.level_hu)) < 3000
    assert (spec.z_multiple, spec.fit_box, spec.window) == (8, True, 192)
    val_id = next(k for k, v in splits.items() if v == "val")
    from ctae_core.io.volume_store import load_volume

    with connect(settings.catalog_path, read_only=True) as con:
        path, = con.execute("SELECT volume_path FROM scans WHERE scan_id = ?", [val_id]).fetchone()
    prep = prepare_input(load_volume(path), 3.0, spec)
    recon, latent = reconstruct(model, prep.x, window=spec.window)
    mse = float(np.mean((recon[prep.region] - prep.x[prep.region]) ** 2))
    assert mse == pytest.approx(run["best_val_loss"], rel=1e-4)  # score sees what validation saw
    assert latent.shape == (64,)


def test_resume_continues_the_same_curve(settings):
    # at a constant rate, a run stopped after one epoch and resumed trains exactly as one never
    # stopped (weights, optimiser state, data order and noise come back from the checkpoint)
    add_scans(settings, COHORT)
    assert train(settings, "straight", "--epochs", "3", "--lr-schedule", "constant").exit_code == 0
    first = train(settings, "split", "--epochs", "1", "--lr-schedule", "constant")
    assert first.exit_code == 0, first.output
    resumed = train(settings, "split", "--epochs", "3", "--resume")
    assert resumed.exit_code == 0, resumed.output
    # the preset's cosine: the rate is a function of the step and the run's epochs, so the resumed
    # epochs train at the rates of the run never stopped (its first epoch ran a 1-epoch curve)
    assert train(settings, "cosine", "--epochs", "3").exit_code == 0
    assert train(settings, "cosine_split", "--epochs", "1").exit_code == 0
    assert train(settings, "cosine_split", "--epochs", "3", "--resume").exit_code == 0
    with connect(settings.catalog_path, read_only=True) as con:
        a, b = train_history(con, "straight"), train_history(con, "split")
        c, d = train_history(con, "cosine"), train_history(con, "cosine_split")
    assert len(a) == len(b) == len(c) == len(d) == 3
    np.testing.assert_allclose([h["train_loss"] for h in a], [h["train_loss"] for h in b], rtol=1e-5)
    # epoch 1 ended a third of the way through the 3-epoch run (not validated) but was the whole
    # of the 1-epoch run it first belonged to (validated); the later epochs validate alike
    assert a[0]["val_loss"] is None and b[0]["val_loss"] > 0
    np.testing.assert_allclose([h["val_loss"] for h in a[1:]], [h["val_loss"] for h in b[1:]], rtol=1e-5)
    assert {h["learning_rate"] for h in a + b} == {a[0]["learning_rate"]}
    rates = [h["learning_rate"] for h in c]
    assert [h["learning_rate"] for h in d][1:] == pytest.approx(rates[1:], rel=1e-9)
    assert rates[0] > rates[1] > rates[2] and d[0]["learning_rate"] < rates[0]


def test_validation_starts_where_the_run_says_and_early_stopping_counts_validated_epochs(settings):
    add_scans(settings, COHORT)
    runs = {"every": ("--validate-from", "0"), "preset": (),
            # validated only at the end: patience 1 must not stop it on the unvalidated epochs
            "last": ("--validate-from", "1", "--early-stopping", "1")}
    for run, extra in runs.items():  # one thread each: the thread count moves the last digits
        result = train(settings, run, "--epochs", "4", "--threads", "1", *extra)
        assert result.exit_code == 0, result.output
    with connect(settings.catalog_path, read_only=True) as con:
        validated = {run: [h["val_loss"] is not None for h in train_history(con, run)] for run in runs}
        best = {run: get_run(con, run)["best_val_loss"] for run in runs}
        last = train_history(con, "last")[-1]["val_loss"]
    assert validated == {"every": [True] * 4, "preset": [False, True, True, True],
                         "last": [False, False, False, True]}
    assert best["last"] == pytest.approx(last)  # the only validated epoch's weights are kept
    checkpoint = load_checkpoint(settings.run_dir("last") / "checkpoint.pt")
    assert all(torch.equal(checkpoint["best_model_state"][k], v) for k, v in checkpoint["model_state"].items())
    # training draws nothing from validation: the same weights, validated or not
    every = load_checkpoint(settings.run_dir("every") / "checkpoint.pt")["model_state"]
    assert all(torch.equal(every[k], v) for k, v in checkpoint["model_state"].items())
    bad = train(settings, "bad", "--epochs", "2", "--validate-from", "1.5")
    assert bad.exit_code == 2 and "--validate-from" in bad.output


def test_one_archive_in_two_folders_trains_one_model(tmp_path):
    """A scan_id hashes the ingest folder's absolute path, so the same archive ingested from
    two folders gets other ids, in another order; the split, the training order and the
    normal-error sample follow where each scan lies under its folder, so the weights agree."""
    volumes = [torso(shape, np.random.default_rng(i)) for i, shape in enumerate(COHORT)]
    runs = {}
    for root, scan_id in (("/mnt/a", "a{:03d}".format), ("/home/b", lambda i: f"b{len(COHORT) - i:03d}")):
        settings = CatalogSettings.resolve(tmp_path / root[1:] / "catalog.duckdb",
                                           tmp_path / root[1:] / "store", env={})
        with connect(settings.catalog_path) as con:
            for i, hu in enumerate(volumes):  # b's ids sort in the reverse of the paths' order
                add_scan(con, settings, scan_id(i), hu, root, f"patient{i:02d}.nii")
        result = train(settings, "r", "--epochs", "2", "--threads", "1", "--normal-error-scans", "3")
        assert result.exit_code == 0, result.output
        with connect(settings.catalog_path, read_only=True) as con:
            paths = dict(con.execute("SELECT scan_id, source_path FROM scans").fetchall())
            runs[root] = ({paths[k]: v for k, v in read_splits(con, "r").items()},
                          load_checkpoint(settings.run_dir("r") / "checkpoint.pt"))
    (split_a, ckpt_a), (split_b, ckpt_b) = runs.values()
    assert split_a == split_b and sorted(split_a.values()).count("train") == 9
    assert all(torch.equal(ckpt_a["best_model_state"][k], v) for k, v in ckpt_b["best_model_state"].items())
    assert ckpt_a["normal_error"] == ckpt_b["normal_error"]


def test_resume_without_epochs_keeps_the_runs_own_count(settings):
    add_scans(settings, COHORT)
    assert train(settings, "f", "--epochs", "1").exit_code == 0
    resumed = train(settings, "f", "--resume")  # the preset's own default is 7 epochs
    assert resumed.exit_code == 0, resumed.output
    with connect(settings.catalog_path, read_only=True) as con:
        assert len(train_history(con, "f")) == 1  # finished: nothing trained again
        assert json.loads(get_run(con, "f")["config_json"])["epochs"] == 1


def test_without_a_preset_train_fits_the_denoising_unet_at_the_stored_spacing(settings):
    add_scans(settings, COHORT)
    args = ["train", "--catalog", str(settings.catalog_path), "--store", str(settings.store_dir),
            "--run", "plain", "--epochs", "1", "--no-progress", "--device", "cpu"]
    result = runner.invoke(app, args)  # no --preset: what `ctae demo` and a new user get
    assert result.exit_code == 0, result.output
    with connect(settings.catalog_path, read_only=True) as con:
        run = get_run(con, "plain")
    config = json.loads(run["config_json"])
    assert run["preset"] == "tiny_dae" and config["model"]["architecture"] == "dae_unet"
    assert run["spacing_mm"] == 3.0 and config["noise_std"] > 0  # denoising, not copying
    model, spec = load_run_model(run["checkpoint_path"])
    assert type(model).__name__ == "DenoisingUNet3D" and spec.window == 192


def test_resume_of_a_finished_run_adds_the_normal_error_and_keeps_the_weights(settings):
    add_scans(settings, COHORT)
    assert train(settings, "n", "--epochs", "1").exit_code == 0
    with connect(settings.catalog_path, read_only=True) as con:
        path = get_run(con, "n")["checkpoint_path"]
    assert load_normal_error(path) is None  # the preset's maps are the raw |error|
    before = load_checkpoint(path)["best_model_state"]
    again = train(settings, "n", "--epochs", "1", "--resume", "--normal-error-scans", "4")
    assert again.exit_code == 0, again.output
    normal = load_normal_error(path)
    assert normal is not None and normal.n_scans == 4
    after = load_checkpoint(path)["best_model_state"]
    assert all(torch.equal(before[k], after[k]) for k in before)  # no epoch was trained again
    # resuming again without the option keeps the table
    assert train(settings, "n", "--epochs", "1", "--resume").exit_code == 0
    assert load_normal_error(path) == normal


def test_existing_run_needs_resume_and_reuse_split_copies_the_split(settings):
    add_scans(settings, COHORT)
    assert train(settings, "a", "--epochs", "1").exit_code == 0
    again = train(settings, "a", "--epochs", "1")
    assert again.exit_code == 2 and "exists already" in again.output and "--resume" in again.output
    other = train(settings, "b", "--epochs", "1", "--seed", "1", "--reuse-split", "a")
    assert other.exit_code == 0, other.output
    with connect(settings.catalog_path, read_only=True) as con:
        assert read_splits(con, "b") == read_splits(con, "a")
        assert read_splits(con, "a") != assign_splits(list(read_splits(con, "a")), 1)  # not a redraw


def test_resume_of_a_run_that_is_not_in_the_catalog_is_refused_and_starts_nothing(settings):
    # until stop 56 a mistyped name with --resume trained a fresh run from its first epoch
    add_scans(settings, COHORT)
    assert train(settings, "a", "--epochs", "1").exit_code == 0
    result = train(settings, "b", "--epochs", "1", "--resume")
    assert result.exit_code == 2, result.output
    said = " ".join(result.output.split())
    assert "ctae train: run 'b' is not in" in said and "nothing to resume; known runs: a" in said
    assert "drop --resume to start it" in said
    with connect(settings.catalog_path, read_only=True) as con:
        assert get_run(con, "b") is None and read_splits(con, "b") == {}


def test_a_device_this_machine_lacks_or_ctae_does_not_run_on_is_refused_and_leaves_no_run(settings):
    # until stop 56 `--device cuda` without a GPU ended in a traceback after the run was made (so
    # the next try needed --resume), and `--device gpu` in torch's list of device types
    add_scans(settings, COHORT)
    for device, said in (("cuda:99", "--device cuda:99 was asked for, but this machine has "),
                         ("gpu", "--device 'gpu' is not one ctae runs on; pass auto, cpu, cuda or cuda:N")):
        result = train(settings, "r", "--epochs", "1", "--device", device)
        assert result.exit_code == 2, result.output
        assert f"ctae train: {said}" in " ".join(result.output.split())
    with connect(settings.catalog_path, read_only=True) as con:
        assert get_run(con, "r") is None


def test_a_scan_whose_stored_volume_is_gone_is_named_before_a_run_is_made(settings):
    # until stop 56 a FileNotFoundError traceback while measuring μ/σ, and the run was left
    # behind in `training` (the next try needed --resume)
    ids = add_scans(settings, COHORT)
    gone = settings.volumes_dir / f"{ids[4]}.npy"
    gone.unlink()
    result = train(settings, "r", "--epochs", "1")
    said = " ".join(result.output.split())
    assert result.exit_code == 2, result.output
    assert f"ctae train: 1 of the 11 ingested scans have no stored volume (the first: {gone})" in said
    assert "run `ctae ingest` on their source again" in said
    with connect(settings.catalog_path, read_only=True) as con:
        assert get_run(con, "r") is None


def test_a_scan_whose_stored_volume_is_damaged_is_named_before_a_run_is_made(settings):
    # until stop 57 a traceback while measuring μ/σ ("mmap length is greater than file size")
    ids = add_scans(settings, COHORT)
    damaged = settings.volumes_dir / f"{ids[2]}.npy"
    damaged.write_bytes(damaged.read_bytes()[:300])
    result = train(settings, "r", "--epochs", "1")
    said = " ".join(result.output.split())
    assert result.exit_code == 2, result.output
    assert (f"ctae train: 1 of the 11 ingested scans have a stored volume that is truncated or "
            f"not one ctae wrote (the first: {damaged})") in said
    with connect(settings.catalog_path, read_only=True) as con:
        assert get_run(con, "r") is None


def test_too_few_scans_is_a_clear_error_and_leaves_no_run(settings):
    add_scans(settings, COHORT[:2])
    result = train(settings, "r", "--epochs", "1")
    assert result.exit_code == 1  # README: nothing could be done yet (2 until stop 55)
    assert "ctae train: only 2 scan(s)" in result.output and "ctae ingest" in result.output
    with connect(settings.catalog_path, read_only=True) as con:
        assert get_run(con, "r") is None


def test_corrupt_checkpoint_on_resume_is_a_clear_error(settings):
    add_scans(settings, COHORT)
    assert train(settings, "c", "--epochs", "1").exit_code == 0
    (settings.run_dir("c") / "checkpoint.pt").write_bytes(b"\x00" * 100)
    result = train(settings, "c", "--epochs", "2", "--resume")
    assert result.exit_code == 2 and "corrupt, truncated" in result.output


def test_an_output_rate_factor_for_the_med3d_model_is_a_clear_error_and_leaves_no_run(settings):
    add_scans(settings, COHORT)
    args = ["train", "--catalog", str(settings.catalog_path), "--store", str(settings.store_dir),
            "--run", "m", "--preset", "tiny", "--output-lr-factor", "10", "--no-progress"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "dae_unet's output layer" in result.output
    with connect(settings.catalog_path, read_only=True) as con:
        assert get_run(con, "m") is None


def test_tiny_dae_trains_its_output_layer_faster_by_default_and_one_rate_is_an_option(settings):
    add_scans(settings, COHORT)
    assert train(settings, "default", "--epochs", "1").exit_code == 0
    assert train(settings, "one", "--epochs", "1", "--output-lr-factor", "1").exit_code == 0
    with connect(settings.catalog_path, read_only=True) as con:
        stored = {r: json.loads(get_run(con, r)["config_json"])["output_lr_factor"] for r in ("default", "one")}
    assert stored == {"default": 10.0, "one": 1.0}  # the default since stop 42
    groups = {r: load_checkpoint(settings.run_dir(r) / "checkpoint.pt")["optimizer_state"]["param_groups"]
              for r in stored}
    assert [g["lr_factor"] for g in groups["default"]] == [1.0, 10.0]
    assert [g["lr_factor"] for g in groups["one"]] == [1.0]


def test_a_run_with_a_faster_output_layer_stores_it_and_resumes_on_the_same_curve(settings):
    add_scans(settings, COHORT)
    head = ("--output-lr-factor", "10", "--lr-schedule", "constant")
    assert train(settings, "straight", "--epochs", "2", *head).exit_code == 0
    first = train(settings, "split", "--epochs", "1", *head)
    assert first.exit_code == 0, first.output
    resumed = train(settings, "split", "--epochs", "2", "--resume")  # the factor comes from the run
    assert resumed.exit_code == 0, resumed.output
    with connect(settings.catalog_path, read_only=True) as con:
        a, b = train_history(con, "straight"), train_history(con, "split")
        config = json.loads(get_run(con, "split")["config_json"])
    assert config["output_lr_factor"] == 10.0
    # both parameter groups, and the head's faster Adam state, come back from the checkpoint
    np.testing.assert_allclose([h["train_loss"] for h in a], [h["train_loss"] for h in b], rtol=1e-5)
    np.testing.assert_allclose([h["val_loss"] for h in a], [h["val_loss"] for h in b], rtol=1e-5)
    groups = load_checkpoint(settings.run_dir("split") / "checkpoint.pt")["optimizer_state"]["param_groups"]
    assert [g["lr_factor"] for g in groups] == [1.0, 10.0]


def test_train_help_gives_each_unet_presets_own_noise_and_output_layer_defaults():
    """The defaults in --help are read from the presets: changing a preset changes its help."""
    from ctae_core.config import PRESETS

    text = " ".join(runner.invoke(app, ["train", "--help"], env={"COLUMNS": "2000"}).output.split())
    for name, cfg in PRESETS.items():
        if cfg.model.architecture == "dae_unet":
            assert f"{name} {cfg.noise_std:g}" in text
            assert f"{name} {cfg.output_lr_factor:g}" in text
    assert "tiny_dae 0.3" in text and "tiny_dae 10" in text  # today's values, spelled out once


def test_a_checkpoint_that_cannot_be_written_ends_training_with_where_and_what_to_do(settings):
    add_scans(settings, COHORT)
    blocked = settings.store_dir / "runs" / "blocked"
    blocked.parent.mkdir(parents=True, exist_ok=True)
    blocked.write_text("a file where the run's folder goes")
    result = train(settings, "blocked", "--epochs", "1")
    assert result.exit_code == 2, result.output
    said = " ".join(result.output.split())
    assert said.startswith(f"ctae train: {blocked / 'checkpoint.pt'}: could not be written (")
    assert "check that the store's folders are folders this user may write (--store)" in said
    assert result.exception is None or isinstance(result.exception, SystemExit)  # no traceback
    with connect(settings.catalog_path) as con:
        assert get_run(con, "blocked")["status"] == "failed"


def test_a_scoring_that_writes_nothing_ends_with_1_and_the_next_scores_only_what_is_missing(settings):
    add_scans(settings, COHORT)
    assert train(settings, "r", "--epochs", "1").exit_code == 0
    blocked = settings.store_dir / "runs" / "r" / "recon"
    blocked.write_text("a file where the reconstructions go")
    score = ["score", "--catalog", str(settings.catalog_path), "--store", str(settings.store_dir),
             "--run", "r", "--threads", "1", "--no-progress"]
    result = runner.invoke(app, score)
    assert result.exit_code == 1, result.output  # README: nothing could be done
    said = " ".join(result.output.split())
    assert "run r: scored 0, failed 11" in said
    assert ("ctae score: 11 scan(s) of run 'r' could not be scored (see the warnings above); once "
            "the cause is mended, `ctae score --run r` scores only those") in said
    blocked.unlink()
    again = runner.invoke(app, score)
    assert again.exit_code == 0, again.output
    assert "run r: scored 11, failed 0" in again.output and "could not be scored" not in again.output


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--lr", "-1", "the learning rate must be a positive number, not -1.0"),  # torch's traceback until stop 55
        ("--lr", "nan", "the learning rate must be a positive number, not nan"),
        ("--noise-std", "-0.5", "noise_std must be a number >= 0, not -0.5"),
        ("--noise-std", "nan", "noise_std must be a number >= 0, not nan"),
        ("--patches-per-scan", "0", "patches_per_scan must be >= 1, not 0"),
        ("--spacing", "nan", "spacing must be a positive number of mm, not nan"),
        ("--output-lr-factor", "inf", "output_lr_factor must be > 0, not inf"),
        ("--early-stopping", "-1", "early_stopping must be >= 0 (0: off), not -1"),  # trained until stop 56
    ],
)
def test_a_training_value_that_is_no_number_or_out_of_range_is_refused_before_any_work(
        settings, option, value, message):
    result = train(settings, "r", "--epochs", "1", option, value)
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())
    with connect(settings.catalog_path, read_only=True) as con:
        assert get_run(con, "r") is None
