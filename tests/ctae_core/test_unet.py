"""The denoising U-Net (the tiny/small default): shapes, coarse noise, windowed scoring, that it
learns to remove the noise, and that runs stored before it existed still load as Med3D."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from ctae_core.config import SMALL_DAE, TINY, TINY_DAE, ModelConfig, TrainConfig, preset
from ctae_core.inference import InputSpec, reconstruct_tensor
from ctae_core.model import ConvAutoencoder3D, build_model
from ctae_core.training import new_optimizer
from ctae_core.unet import Conv3d, DenoisingUNet3D, coarse_noise


def test_presets_name_their_architecture_and_the_thesis_stays_med3d():
    assert (TINY_DAE.model.architecture, SMALL_DAE.model.architecture) == ("dae_unet", "dae_unet")
    assert preset("thesis").model.architecture == "med3d" and preset("thesis").model.latent == 1024
    assert isinstance(build_model(TINY_DAE.model), DenoisingUNet3D)
    assert isinstance(build_model(TINY.model), ConvAutoencoder3D)
    # a run stored before the field existed is the Med3D autoencoder it was trained as
    old = TINY.to_dict()
    old["model"].pop("architecture")
    for key in ("patch_size", "patches_per_scan", "noise_std", "noise_cell", "window"):
        old.pop(key)
    assert TrainConfig.from_dict(old) == TINY
    assert TrainConfig.from_dict(TINY_DAE.to_dict()) == TINY_DAE
    with pytest.raises(ValueError, match="bottleneck's 64 channels"):
        dataclasses.replace(TINY_DAE.model, latent=32)
    with pytest.raises(ValueError, match="multiple of 8"):
        dataclasses.replace(TINY_DAE, patch_size=30)


def test_unet_reconstructs_any_multiple_of_8_and_pools_its_bottleneck():
    model = DenoisingUNet3D(TINY_DAE.model).eval()
    with torch.no_grad():
        recon, latent = model.reconstruct_and_encode(torch.zeros(2, 1, 16, 40, 24))
    assert recon.shape == (2, 1, 16, 40, 24) and latent.shape == (2, 64)
    with pytest.raises(ValueError, match="multiples of 8"):
        model(torch.zeros(1, 1, 16, 20, 24))


def test_coarse_noise_is_smooth_blobs_of_the_asked_sd():
    noise = coarse_noise((4, 1, 32, 32, 32), 0.2, 8, torch.Generator().manual_seed(0))[:, 0].numpy()
    assert noise.shape == (4, 32, 32, 32)
    assert 0.08 < noise.std() < 0.25  # trilinear upsampling lowers the grid's SD a little
    neighbours = np.corrcoef(noise[:, :, :, :-1].ravel(), noise[:, :, :, 1:].ravel())[0, 1]
    assert neighbours > 0.95  # blobs, not voxel speckle: the skips cannot just copy it away


def test_windowed_scoring_matches_one_pass_where_windows_cover_the_scan():
    torch.manual_seed(0)
    model = DenoisingUNet3D(TINY_DAE.model).eval()
    x = torch.randn(1, 1, 24, 48, 40)
    with torch.no_grad():
        whole, z_whole = reconstruct_tensor(model, x, None)
        same, z_same = reconstruct_tensor(model, x, 64)  # one window holds the scan
        tiled, z_tiled = reconstruct_tensor(model, x, 24)  # overlapping windows, blended
    torch.testing.assert_close(same, whole, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(z_same, z_whole, atol=1e-5, rtol=1e-5)
    assert tiled.shape == whole.shape and z_tiled.shape == (1, 64)
    centre = (slice(None), slice(None), slice(8, 16), slice(16, 32), slice(16, 24))
    # BatchNorm uses fixed statistics in eval: a window changes only what its borders see
    assert float((tiled - whole)[centre].abs().mean()) < 0.5 * float(whole[centre].abs().mean())


def test_a_unet_run_is_scored_in_channels_last_memory_as_contiguous_memory_scores_it(tmp_path):
    """`ctae score` loads the U-Net channels_last_3d (1.5-1.9x faster on the CPU, stop 51); its
    reconstructions and latents are the contiguous model's, in one window and in several."""
    from ctae_core.inference import reconstruct_batch
    from ctae_core.io.checkpoint import load_run_model, save_checkpoint

    torch.manual_seed(0)
    model = DenoisingUNet3D(TINY_DAE.model).eval()
    spec = InputSpec(3.0, (40, 48, 40), -600.0, 450.0)
    save_checkpoint({"model_config": dataclasses.asdict(model.cfg), "model_state": model.state_dict(),
                     "input_spec": spec.to_dict()}, tmp_path / "checkpoint.pt")
    fast, _ = load_run_model(tmp_path / "checkpoint.pt", channels_last=True)
    conv = next(w for w in fast.parameters() if w.ndim == 5 and w.shape[1] > 1 and w.shape[2] > 1)
    assert conv.is_contiguous(memory_format=torch.channels_last_3d) and not conv.is_contiguous()
    scan = np.random.default_rng(0).normal(size=(40, 48, 40)).astype(np.float32)
    for window in (64, 24):
        plain, z_plain = reconstruct_batch(model, [scan], window=window)
        last, z_last = reconstruct_batch(fast, [scan], channels_last=True, window=window)
        np.testing.assert_allclose(last, plain, atol=1e-5)
        np.testing.assert_allclose(z_last, z_plain, atol=1e-5)


def test_a_few_denoising_steps_lower_the_loss_on_phantom_cubes(phantom_hu):
    torch.manual_seed(0)
    model = DenoisingUNet3D(TINY_DAE.model)
    clean = torch.from_numpy((phantom_hu[:16, :32, :32].astype(np.float32) + 600) / 450)[None, None]
    clean = clean.repeat(2, 1, 1, 1, 1)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for step in range(15):
        noisy = clean + coarse_noise(tuple(clean.shape), 0.2, 8, torch.Generator().manual_seed(step))
        opt.zero_grad()
        loss = torch.mean((model(noisy) - clean) ** 2)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_input_spec_of_a_unet_run_fits_the_box_to_the_scan_and_keeps_its_window():
    spec = InputSpec(3.0, (64, 152, 152), -600.0, 450.0, z_multiple=8, fit_box=True, window=128)
    assert spec.box_for((43, 121, 123)) == (48, 128, 128)  # no frame of air to compute
    assert InputSpec.from_dict(spec.to_dict()) == spec
    old = {k: v for k, v in spec.to_dict().items() if k not in ("fit_box", "window")}
    assert InputSpec.from_dict(old).box_for((43, 121, 123)) == (48, 152, 152)
    assert ModelConfig().architecture == "med3d"


def _loss_after(cfg: TrainConfig, clean: torch.Tensor, init_seed: int, steps: int) -> float:
    torch.manual_seed(init_seed)
    model = DenoisingUNet3D(cfg.model)
    opt = new_optimizer(cfg, model)
    for step in range(steps):
        noisy = clean + coarse_noise(tuple(clean.shape), cfg.noise_std, cfg.noise_cell,
                                     torch.Generator().manual_seed(step))
        opt.zero_grad()
        loss = torch.mean((model(noisy) - clean) ** 2)
        loss.backward()
        opt.step()
    return loss.item()


def test_the_output_layers_rate_lets_every_initial_weight_learn(phantom_hu):
    """At one rate, whether 20 Adam steps denoise a phantom cube depends on the initial weights
    (the 1×1 output layer's weights must grow to order 1 at ~lr per step); at ten times the rate
    for that layer alone, every one of eight initialisations does (stop 41)."""
    clean = torch.from_numpy((phantom_hu.astype(np.float32) + 600) / 450)[None, None].repeat(2, 1, 1, 1, 1)
    one_rate = dataclasses.replace(TINY_DAE, output_lr_factor=1.0)
    faster_head = dataclasses.replace(TINY_DAE, output_lr_factor=10.0)
    before = [_loss_after(one_rate, clean, seed, 20) for seed in range(8)]
    after = [_loss_after(faster_head, clean, seed, 20) for seed in range(8)]
    assert max(before) > 0.5 and min(before) < 0.2  # the init decided
    assert max(after) < 0.2, after


def test_one_adam_step_moves_the_output_layer_by_its_factor_of_the_rate():
    cfg = dataclasses.replace(TINY_DAE, output_lr_factor=10.0)
    torch.manual_seed(0)
    model = DenoisingUNet3D(cfg.model)
    opt = new_optimizer(cfg, model)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([cfg.lr, 10 * cfg.lr])
    head_before = model.out.weight.detach().clone()
    first_before = model.down[0][0].weight.detach().clone()
    torch.mean(model(torch.randn(2, 1, 16, 16, 16)) ** 2).backward()
    opt.step()  # Adam's first step moves every weight with a gradient by its group's rate
    assert float((model.out.weight.detach() - head_before).abs().max()) == pytest.approx(10 * cfg.lr, rel=1e-3)
    assert float((model.down[0][0].weight.detach() - first_before).abs().max()) == pytest.approx(cfg.lr, rel=1e-3)
    assert len(new_optimizer(dataclasses.replace(cfg, output_lr_factor=1.0), model).param_groups) == 1


def test_the_output_rate_factor_is_the_unets_and_old_runs_train_at_one_rate():
    with pytest.raises(ValueError, match="dae_unet's output layer"):
        dataclasses.replace(TINY, output_lr_factor=10.0)
    with pytest.raises(ValueError, match="must be > 0"):
        dataclasses.replace(TINY_DAE, output_lr_factor=0.0)
    old = TINY_DAE.to_dict()
    old.pop("output_lr_factor")  # a run stored before stop 41
    assert TrainConfig.from_dict(old).output_lr_factor == 1.0
    # tiny_dae's default since stop 42; small_dae keeps one rate (measured on tiny_dae only)
    assert (TINY_DAE.output_lr_factor, SMALL_DAE.output_lr_factor) == (10.0, 1.0)


def _as_trained(model: DenoisingUNet3D) -> DenoisingUNet3D:
    """``model`` with BatchNorm statistics and affine maps away from their initial 0 / 1."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for bn in (m for m in model.modules() if isinstance(m, torch.nn.BatchNorm3d)):
            bn.running_mean.copy_(torch.randn(bn.num_features, generator=g) * 0.5)
            bn.running_var.copy_(torch.rand(bn.num_features, generator=g) + 0.5)
            bn.weight.copy_(torch.rand(bn.num_features, generator=g) + 0.5)
            bn.bias.copy_(torch.randn(bn.num_features, generator=g) * 0.1)
    return model.eval()


def test_a_unet_is_scored_with_its_batchnorms_folded_into_its_convolutions(tmp_path):
    """Eval mode's BatchNorm is an affine map per channel: folded into the convolution before
    it, the scored model makes one pass fewer over each activation and computes the same."""
    from ctae_core.io.checkpoint import load_run_model, save_checkpoint

    torch.manual_seed(0)
    model = _as_trained(DenoisingUNet3D(TINY_DAE.model))
    folded = model.folded()
    assert not any(isinstance(m, torch.nn.BatchNorm3d) for m in folded.modules())
    assert sum(isinstance(m, torch.nn.BatchNorm3d) for m in model.modules()) == 14  # untouched: two per block
    x = torch.randn(1, 1, 24, 48, 40)
    with torch.no_grad():
        recon, code = model.reconstruct_and_code(x)
        recon_f, code_f = folded.reconstruct_and_code(x)
    assert float(recon.std()) > 0.01 and float(code.std()) > 0.01  # a comparison of something
    torch.testing.assert_close(recon_f, recon, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(code_f, code, atol=1e-5, rtol=1e-5)
    with pytest.raises(RuntimeError, match="eval mode only"):
        model.train().folded()
    spec = InputSpec(3.0, (24, 48, 40), -600.0, 450.0)
    save_checkpoint({"model_config": dataclasses.asdict(model.cfg), "model_state": model.state_dict(),
                     "input_spec": spec.to_dict()}, tmp_path / "checkpoint.pt")
    loaded, _ = load_run_model(tmp_path / "checkpoint.pt", channels_last=True)
    assert not any(isinstance(m, torch.nn.BatchNorm3d) for m in loaded.modules())


@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="this torch has no oneDNN")
def test_a_single_scan_is_convolved_by_onednn_not_the_naive_kernel():
    """Batch 1 with N·C·Z·Y ≤ 20480 sends nn.Conv3d to PyTorch's naive kernel (2-7x slower on
    the U-Net's first and coarse levels, stop 53); the U-Net's convolutions take oneDNN's where
    no gradient is wanted, with the same result, and train as nn.Conv3d does."""
    from torch.profiler import ProfilerActivity, profile

    torch.manual_seed(0)
    model = _as_trained(DenoisingUNet3D(TINY_DAE.model))
    x = torch.randn(1, 1, 24, 48, 40)  # N·C·Z·Y = 1152 at the first convolution
    with torch.no_grad(), profile(activities=[ProfilerActivity.CPU]) as prof:
        recon = model(x)
    kernels = {e.key for e in prof.key_averages()}
    assert "aten::mkldnn_convolution" in kernels and "aten::slow_conv3d_forward" not in kernels
    conv = model.down[0][0]
    with torch.no_grad():
        torch.testing.assert_close(conv(x), torch.nn.functional.conv3d(x, conv.weight, None, 1, 1),
                                   atol=1e-5, rtol=1e-5)
        plain = _with_torchs_convolutions(model)(x)
    torch.testing.assert_close(recon, plain, atol=1e-5, rtol=1e-5)
    model.train()
    model(torch.randn(2, 1, 16, 16, 16)).square().mean().backward()
    assert conv.weight.grad is not None and float(conv.weight.grad.abs().sum()) > 0


def _with_torchs_convolutions(model: DenoisingUNet3D) -> DenoisingUNet3D:
    """A copy of ``model`` whose convolutions are nn.Conv3d (PyTorch's own choice of kernel)."""
    import copy

    plain = copy.deepcopy(model)
    for module in plain.modules():
        for name, child in module.named_children():
            if isinstance(child, Conv3d):
                swap = torch.nn.Conv3d(child.in_channels, child.out_channels, child.kernel_size,
                                       padding=child.padding, bias=child.bias is not None)
                swap.load_state_dict(child.state_dict())
                setattr(module, name, swap)
    return plain.eval()
