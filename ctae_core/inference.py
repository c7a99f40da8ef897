"""Rebuild a trained run's model and feed it a scan exactly as training did.

``score`` and ``embed`` use only this module and ``ctae_core.io.checkpoint.load_run_model``
(which reads the file and calls ``run_model_from_checkpoint`` here): the model and its
``InputSpec`` (spacing, pad size, μ/σ); ``prepare_input`` turns a stored int16 scan into the
normalised, deterministically padded model input; ``reconstruct_batch`` runs the model. Reads
no files.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ctae_core.config import model_config_from_dict
from ctae_core.data import rescale_volume
from ctae_core.errors import CheckpointError
from ctae_core.model import Autoencoder, build_model
from ctae_core.padding import AIR_HU, Region, normalised_air, pad_to_size, round_up
from ctae_core.scoring import body_mask
from ctae_core.unet import DenoisingUNet3D


@dataclass(frozen=True)
class InputSpec:
    """How a run's model wants its input.

    Attributes:
        spacing_mm: Isotropic input spacing (scans are resampled to it).
        pad_size_zyx: Padded input (Z, Y, X) voxels at ``spacing_mm``.
        norm_mean_hu: μ of eq. 3.1, HU, over all training voxels.
        norm_std_hu: σ of eq. 3.1, HU.
        z_multiple: Fully convolutional (``spatial``) models only: pad Z to the scan's own
            slice count rounded up to this multiple instead of ``pad_size_zyx[0]`` (never
            cropping Z), so a long scan is seen whole and a short one costs little. ``None``
            (``global`` models) pads to ``pad_size_zyx`` exactly.
        fit_box: Pad Y and X too to the scan's own size rounded up to ``z_multiple`` (the
            U-Net: no frame of air to compute), not to ``pad_size_zyx``.
        window: Side of the sliding windows the model runs in over a scan (``dae_unet``);
            ``None`` = one pass over the whole padded input.
    """

    spacing_mm: float
    pad_size_zyx: tuple[int, int, int]
    norm_mean_hu: float
    norm_std_hu: float
    z_multiple: int | None = None
    fit_box: bool = False
    window: int | None = None

    def box_for(self, shape_zyx: tuple[int, ...]) -> tuple[int, int, int]:
        """The padded (Z, Y, X) box a scan of ``shape_zyx`` (at ``spacing_mm``) is placed in."""
        if self.z_multiple is None:
            return self.pad_size_zyx
        own = round_up(tuple(max(1, int(n)) for n in shape_zyx), self.z_multiple)
        if self.fit_box:
            return own  # type: ignore[return-value]
        return (own[0], self.pad_size_zyx[1], self.pad_size_zyx[2])

    @property
    def pad_value(self) -> float:
        """Normalised air, the value of every padded voxel."""
        return normalised_air(self.norm_mean_hu, self.norm_std_hu)

    def normalise(self, hu: np.ndarray) -> np.ndarray:
        """HU → model units (eq. 3.1), float32."""
        return ((np.asarray(hu, dtype=np.float32) - self.norm_mean_hu) / self.norm_std_hu).astype(np.float32)

    def to_hu(self, x: np.ndarray | torch.Tensor) -> np.ndarray:
        """Model units → HU (e.g. a reconstruction), float32 numpy."""
        if isinstance(x, torch.Tensor):
            x = x.detach().float().cpu().numpy()
        return (np.asarray(x, dtype=np.float32) * self.norm_std_hu + self.norm_mean_hu).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InputSpec:
        return cls(
            spacing_mm=float(data["spacing_mm"]),
            pad_size_zyx=tuple(int(v) for v in data["pad_size_zyx"]),  # type: ignore[arg-type]
            norm_mean_hu=float(data["norm_mean_hu"]),
            norm_std_hu=float(data["norm_std_hu"]),
            z_multiple=None if data.get("z_multiple") is None else int(data["z_multiple"]),
            fit_box=bool(data.get("fit_box", False)),
            window=None if data.get("window") is None else int(data["window"]),
        )


@dataclass(frozen=True)
class PreparedInput:
    """A scan ready for the model.

    Attributes:
        x: Normalised, padded float32 (Z, Y, X) of ``spec.box_for(scan shape)`` (the pad size,
            or for fully convolutional runs the scan's Z rounded up to 8); pad = normalised air.
        region: Slices of ``x`` where the scan sits (centred: deterministic).
        hu: The scan in HU at the run's spacing, float32, unpadded; ``x[region]`` is its
            normalised copy. If the scan was larger than the pad size, this is the centre-cropped
            part that entered the model (see ``kept``).
        kept: Slices of the resampled scan that ``hu`` holds (the whole scan unless cropped).
        stored_hu: The stored volume it was prepared from, as given (int16, often a memory map):
            a coarser run's anomaly map is made on its grid (``abs_error_on_stored_grid``).
        stored_spacing_mm: Its isotropic spacing.
    """

    x: np.ndarray
    region: Region
    hu: np.ndarray
    kept: Region
    stored_hu: np.ndarray
    stored_spacing_mm: float

    @property
    def stored_shape(self) -> tuple[int, int, int]:
        """Shape (Z, Y, X) of the stored volume, so that a voxel found at the run's spacing maps
        back inside the stored grid."""
        return tuple(int(n) for n in np.shape(self.stored_hu))  # type: ignore[return-value]

    @property
    def body_mask(self) -> np.ndarray:
        """Voxels of ``hu`` with HU > −990 (DESIGN.md body mask), bool (Z, Y, X)."""
        return body_mask(self.hu)


def prepare_input(
    hu_int16: np.ndarray, stored_spacing_mm: float, spec: InputSpec, name: str = "scan"
) -> PreparedInput:
    """Resample a stored scan to the run's spacing, normalise it and pad it, centred.

    Args:
        hu_int16: Stored HU volume (Z, Y, X), int16 (a memory map is fine).
        stored_spacing_mm: Its isotropic spacing (``scans.spacing_mm``).
        spec: The run's InputSpec from ``load_run_model``.
        name: Names the scan in the crop warning.
    """
    if np.asarray(hu_int16).ndim != 3:
        raise ValueError(f"{name}: expected a (Z, Y, X) HU volume, got shape {np.shape(hu_int16)}")
    hu = rescale_volume(hu_int16, stored_spacing_mm, spec.spacing_mm)
    padded, region, kept = pad_to_size(hu, spec.box_for(hu.shape), AIR_HU, rng=None, name=name)
    return PreparedInput(x=spec.normalise(padded), region=region, hu=hu[kept], kept=kept,
                         stored_hu=hu_int16, stored_spacing_mm=float(stored_spacing_mm))


def load_state(module: nn.Module, state: dict[str, torch.Tensor], source: Path | str) -> None:
    """``module.load_state_dict(state)`` with a CheckpointError that names the file on mismatch."""
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise CheckpointError(
            f"{source}: weights do not fit this model ({str(err)[:300]}); the checkpoint was "
            "written for another architecture — check --preset/--depth/--latent"
        ) from err


def model_from_checkpoint(data: dict[str, Any], source: Path | str, best: bool = True) -> Autoencoder:
    """Build the autoencoder a checkpoint describes and load its (best) weights, in eval mode."""
    try:
        cfg = model_config_from_dict(data["model_config"])
        state = data.get("best_model_state") if best else None
        state = state or data["model_state"]
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{source}: checkpoint lacks a valid model description ({err})") from err
    model = build_model(cfg)
    load_state(model, state, source)
    return model.eval()


def run_model_from_checkpoint(
    data: dict[str, Any], source: Path | str, device: str | torch.device = "cpu",
    channels_last: bool = False,
) -> tuple[Autoencoder, InputSpec]:
    """The run's trained model (best validation epoch, eval mode, on ``device``; the U-Net with
    its BatchNorms folded into its convolutions) and its InputSpec, from a loaded checkpoint.
    ``channels_last``: channels_last_3d weights, which make
    3D convolutions faster on the CPU: the Med3D model's ~3× (benchmarks/bench_score.py), the
    U-Net's whole-scan windows 1.5–1.9× on one or two threads, the reconstruction within 1e-6
    (stop 51, AVX2; an earlier build had measured it ~5× slower with 128³ windows, and ran the
    U-Net contiguous until then).

    Raises:
        CheckpointError: a foreign checkpoint, or a training run that never finished an epoch.
    """
    if "input_spec" not in data:
        raise CheckpointError(f"{source}: checkpoint has no input spec; retrain the run")
    spec = InputSpec.from_dict(data["input_spec"])
    model = model_from_checkpoint(data, source)
    if isinstance(model, DenoisingUNet3D):
        model = model.folded()
    model = model.to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last_3d)
    return model, spec


WINDOW_OVERLAP = 0.25
"""Overlap of neighbouring windows; Gaussian blending hides their seams."""


def _windowed(
    model: DenoisingUNet3D, t: torch.Tensor, window: int
) -> tuple[torch.Tensor, torch.Tensor]:
    from monai.inferers import sliding_window_inference

    roi = tuple(min(window, int(n)) for n in t.shape[2:])  # sides are multiples of 8 already
    recon, code = sliding_window_inference(
        t, roi, sw_batch_size=1, predictor=model.reconstruct_and_code, overlap=WINDOW_OVERLAP,
        mode="gaussian", progress=False,
    )
    return recon, model.pool(code).flatten(1)


def reconstruct_tensor(
    model: Autoencoder, t: torch.Tensor, window: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(reconstruction (B, 1, Z, Y, X), latent (B, latent)) of a prepared batch: one pass, or
    for the U-Net overlapping ``window``³ windows blended (the latent: the blended bottleneck
    averaged over the scan)."""
    if window is not None and isinstance(model, DenoisingUNet3D):
        return _windowed(model, t, window)
    return model.reconstruct_and_encode(t)


def forward_volume(model: nn.Module, t: torch.Tensor, window: int | None = None) -> torch.Tensor:
    """The reconstruction of a prepared batch (B, 1, Z, Y, X), windowed as the run scores."""
    inner = model.module if hasattr(model, "module") else model
    return reconstruct_tensor(inner, t, window)[0]  # type: ignore[arg-type]


@torch.inference_mode()
def reconstruct_batch(
    model: Autoencoder, xs: Sequence[np.ndarray], device: str | torch.device = "cpu",
    channels_last: bool = False, window: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Reconstructions (B, Z, Y, X) float32 and latent vectors (B, latent) of prepared inputs
    of one shape. ``channels_last``: the model's weights are channels_last_3d, so the input
    follows. ``window``: the run's ``InputSpec.window``."""
    t = torch.from_numpy(np.stack([np.asarray(x, dtype=np.float32) for x in xs]))[:, None].to(device)
    if channels_last:
        t = t.contiguous(memory_format=torch.channels_last_3d)
    recon, latent = reconstruct_tensor(model, t, window)
    return recon[:, 0].float().cpu().numpy(), latent.float().cpu().numpy()


def reconstruct(
    model: Autoencoder, x: np.ndarray, device: str | torch.device = "cpu", window: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Reconstruction (Z, Y, X) float32 and latent vector (latent,) of one prepared input ``x``."""
    recon, latent = reconstruct_batch(model, [x], device, window=window)
    return recon[0], latent[0]


def normal_error_levels(
    model: Autoencoder, spec: InputSpec, scans: Sequence[tuple[np.ndarray, float]],
    device: str | torch.device = "cpu",
) -> list[np.ndarray]:
    """Per scan (stored int16 HU, its spacing), reconstructed as `ctae score` does, its usual
    |error| per context (``ctae_core.error_norm.scan_levels``), to fit the run's normal error on."""
    from ctae_core.error_norm import scan_levels

    levels = []
    for i, (hu_int16, spacing_mm) in enumerate(scans):
        p = prepare_input(hu_int16, spacing_mm, spec)
        recon, _ = reconstruct(model, p.x, device, window=spec.window)
        levels.append(scan_levels(abs_error_hu(p, recon, spec), p.hu, p.body_mask, spec.spacing_mm,
                                  seed=i))
    return levels


def abs_error_hu(prepared: PreparedInput, recon: np.ndarray, spec: InputSpec) -> np.ndarray:
    """|input − reconstruction| in HU over the prepared input's region (Z, Y, X), float32. The
    anomaly map and the run's normal-error table are both made of it: one formula, because the
    table only holds for the error it was fitted on."""
    p = prepared
    return np.abs(p.x[p.region] - recon[p.region]) * np.float32(spec.norm_std_hu)


def abs_error_on_stored_grid(prepared: PreparedInput, recon: np.ndarray, spec: InputSpec
                             ) -> tuple[np.ndarray, np.ndarray]:
    """|stored scan − reconstruction| in HU on the stored grid, and the body mask there, for a
    run coarser than the stored scans (``tiny`` at 6 mm): the reconstruction is resampled up
    (trilinear, ``rescale_volume``) and set where the model saw the scan; voxels it did not see
    (a scan cropped to the pad size) get no error and no body.

    Why: at the run's spacing a small dense object (a wire, an electrode, a valve ring) is
    averaged with the tissue around it into a voxel no brighter than bone; against the stored
    scan it keeps its HU. On six real-anatomy cohorts (seeds 191-196, ``tiny``) the hottest
    region lay within 10 mm of 42 of 56 objects this way, 30 at 6 mm.

    Returns:
        (|error| float32, body bool), both of the stored volume's shape.
    """
    p = prepared
    stored = np.asarray(p.stored_hu, dtype=np.float32)
    up = rescale_volume(spec.to_hu(recon[p.region]), spec.spacing_mm, p.stored_spacing_mm)
    scale = spec.spacing_mm / p.stored_spacing_mm
    start = [int(round((k.start or 0) * scale)) for k in p.kept]
    at = tuple(slice(s, min(s + n, m)) for s, n, m in zip(start, up.shape, stored.shape, strict=True))
    part = tuple(slice(0, a.stop - a.start) for a in at)
    error = np.zeros(stored.shape, dtype=np.float32)
    body = np.zeros(stored.shape, dtype=bool)
    error[at] = np.abs(stored[at] - up[part])
    body[at] = body_mask(stored[at])
    return error, body
