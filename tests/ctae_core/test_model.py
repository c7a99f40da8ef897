"""The autoencoder's shapes per preset, that it learns, and its checkpoint files."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from ctae_core.config import PRESETS, TINY, TrainConfig, learning_rate, preset
from ctae_core.errors import CheckpointError
from ctae_core.inference import InputSpec, prepare_input, reconstruct
from ctae_core.io.checkpoint import (
    load_checkpoint,
    load_encoder_weights,
    load_run_model,
    save_checkpoint,
)
from ctae_core.model import ConvAutoencoder3D, Med3DEncoder, build_model


def _meta_shapes(cfg, size):
    with torch.device("meta"):
        model = build_model(cfg)
        x = torch.empty(2, 1, *size)
        return tuple(model(x).shape), tuple(model.encode(x).shape)


@pytest.mark.parametrize(
    ("name", "size", "latent"),
    [("tiny_dae", (16, 56, 56), 64), ("small_dae", (32, 112, 104), 128), ("tiny", (16, 56, 56), 64),
     ("small", (32, 112, 104), 32),
     ("thesis", (273, 87, 87), 1024)],
)
def test_output_shapes_per_preset(name, size, latent):
    recon, z = _meta_shapes(preset(name).model, size)
    assert recon == (2, 1, *size)
    assert z == (2, latent)


def test_thesis_preset_is_table_3_1():
    cfg = PRESETS["thesis"]
    assert (cfg.lr, cfg.momentum, cfg.weight_decay, cfg.batch_size, cfg.epochs) == (0.05, 0.9, 1e-5, 10, 1600)
    assert (cfg.model.depth, cfg.model.latent, cfg.model.bottleneck) == (34, 1024, "global")
    assert cfg.pad_size_zyx == (273, 87, 87) and cfg.spacing_mm == 3.0 and cfg.optimizer == "sgd"


def test_cosine_schedule_falls_from_lr_to_one_percent_and_constant_stays():
    cfg = dataclasses.replace(TINY, epochs=11, lr=0.01, lr_schedule="cosine")
    rates = [learning_rate(cfg, e) for e in range(11)]
    assert rates[0] == pytest.approx(0.01) and learning_rate(cfg, 10, 1.0) == pytest.approx(1e-4)
    assert learning_rate(cfg, 5, 0.5) == pytest.approx(0.5 * (0.01 + 1e-4))  # half-way down
    assert all(a > b for a, b in zip(rates, rates[1:], strict=False))
    # set at every step: the last epoch trains on its way down, not at the floor throughout
    three = dataclasses.replace(cfg, epochs=3)
    last_epoch = [learning_rate(three, 2, step / 10) for step in range(10)]
    assert last_epoch[0] == pytest.approx(0.01 * (0.01 + 0.99 * 0.25))  # cos² of 60°: a quarter
    assert last_epoch[0] > 20 * 1e-4 and all(a > b for a, b in zip(last_epoch, last_epoch[1:], strict=False))
    thesis = preset("thesis")
    assert {learning_rate(thesis, e) for e in (0, 800, 1599)} == {0.05}
    # a run stored before lr_schedule existed keeps its constant rate
    old = {k: v for k, v in TINY.to_dict().items() if k != "lr_schedule"}
    assert TrainConfig.from_dict(old).lr_schedule == "constant"
    with pytest.raises(ValueError, match="lr_schedule"):
        dataclasses.replace(TINY, lr_schedule="step")


def test_config_round_trips_through_dict():
    cfg = TrainConfig.from_dict(TINY.to_dict())
    assert cfg == TINY
    with pytest.raises(ValueError, match="unknown TrainConfig keys"):
        TrainConfig.from_dict({**TINY.to_dict(), "colour": "red"})


def test_spatial_model_accepts_any_size_and_global_rejects_other_sizes():
    tiny = ConvAutoencoder3D(TINY.model).eval()
    with torch.no_grad():
        assert tiny(torch.zeros(1, 1, 11, 29, 35)).shape == (1, 1, 11, 29, 35)
    glob = dataclasses.replace(TINY.model, bottleneck="global", input_size_zyx=(16, 24, 24))
    with pytest.raises(ValueError, match="differs from the model's padded size"):
        ConvAutoencoder3D(glob)(torch.zeros(1, 1, 16, 24, 32))


@pytest.mark.parametrize("bottleneck", ["spatial", "global"])
def test_a_few_steps_lower_the_loss_on_a_fixed_batch(phantom_hu, bottleneck):
    torch.manual_seed(0)
    cfg = dataclasses.replace(TINY.model, bottleneck=bottleneck, input_size_zyx=(16, 32, 32))
    model = ConvAutoencoder3D(cfg)
    x = torch.from_numpy((phantom_hu.astype(np.float32) + 500) / 500)[None, None].repeat(2, 1, 1, 1, 1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(12):
        opt.zero_grad()
        loss = torch.mean((model(x) - x) ** 2)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[0] == pytest.approx(float(torch.mean(x**2)), rel=0.1)  # starts at "predict 0"
    assert losses[-1] < 0.65 * losses[0] and losses[-1] < min(losses[:6])


def test_same_seed_same_model():
    torch.manual_seed(3)
    a = ConvAutoencoder3D(TINY.model)
    torch.manual_seed(3)
    b = ConvAutoencoder3D(TINY.model)
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(pa, pb), name


def _write_run_checkpoint(path, model, spec):
    return save_checkpoint(
        {"model_config": dataclasses.asdict(model.cfg), "model_state": model.state_dict(),
         "input_spec": spec.to_dict()},
        path,
    )


def test_checkpoint_round_trip_reproduces_the_reconstruction(tmp_path, phantom_hu):
    torch.manual_seed(1)
    model = ConvAutoencoder3D(TINY.model).eval()
    spec = InputSpec(3.0, (16, 32, 32), -600.0, 450.0)
    _write_run_checkpoint(tmp_path / "checkpoint.pt", model, spec)
    loaded, spec2 = load_run_model(tmp_path / "checkpoint.pt")
    assert spec2 == spec and not loaded.training
    x = prepare_input(phantom_hu, 3.0, spec).x
    recon_a, z_a = reconstruct(model, x)
    recon_b, z_b = reconstruct(loaded, x)
    np.testing.assert_array_equal(recon_a, recon_b)
    assert recon_a.shape == (16, 32, 32) and z_a.shape == (64,)
    assert not list(tmp_path.glob(".*.tmp"))  # the atomic write left no temp file


def test_corrupt_and_foreign_checkpoints_give_clear_errors(tmp_path):
    model = ConvAutoencoder3D(TINY.model)
    good = _write_run_checkpoint(tmp_path / "good.pt", model, InputSpec(6.0, (16, 32, 32), 0.0, 1.0))
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="corrupt, truncated"):
        load_checkpoint(truncated)
    text = tmp_path / "notes.pt"
    text.write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt, truncated"):
        load_run_model(text)
    torch.save({"epoch": 3, "state_dict": {}}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not a ctae checkpoint"):
        load_run_model(tmp_path / "foreign.pt")
    other = ConvAutoencoder3D(dataclasses.replace(TINY.model, latent=8))
    _write_run_checkpoint(tmp_path / "other.pt", other, InputSpec(6.0, (16, 32, 32), 0.0, 1.0))
    data = load_checkpoint(tmp_path / "other.pt")
    data["model_config"] = dataclasses.asdict(TINY.model)  # claims tiny, holds latent-8 weights
    save_checkpoint({k: v for k, v in data.items() if k != "format"}, tmp_path / "lying.pt")
    with pytest.raises(CheckpointError, match="do not fit this model"):
        load_run_model(tmp_path / "lying.pt")
    with pytest.raises(CheckpointError, match="no checkpoint file"):
        load_checkpoint(tmp_path / "missing.pt")


def test_medicalnet_weights_load_into_the_encoder(tmp_path):
    torch.manual_seed(5)
    source = Med3DEncoder(10, (8, 16, 32, 48))
    state = {f"module.{k}": v for k, v in source.state_dict().items()}
    state["module.conv_seg.0.weight"] = torch.zeros(4, 48, 3, 3, 3)
    torch.save({"epoch": 200, "state_dict": state}, tmp_path / "resnet_10.pth")
    model = ConvAutoencoder3D(TINY.model)
    assert load_encoder_weights(model.encoder, tmp_path / "resnet_10.pth") == len(source.state_dict())
    assert torch.equal(model.encoder.layer4[0].conv2.weight, source.layer4[0].conv2.weight)

    deeper = {f"module.{k}": v for k, v in Med3DEncoder(18, (8, 16, 32, 48)).state_dict().items()}
    torch.save({"state_dict": deeper}, tmp_path / "resnet_18.pth")
    with pytest.raises(CheckpointError, match=r"ResNet10 encoder .*unexpected"):
        load_encoder_weights(model.encoder, tmp_path / "resnet_18.pth")
