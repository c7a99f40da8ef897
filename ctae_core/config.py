"""Model and training configuration: frozen dataclasses, presets, and their JSON form.

The ``thesis`` preset is Table 3.1 of the thesis (Med3D ResNet34 encoder, global latent of
1024, 3 mm, padded to 87×87×273, SGD lr 0.05 / momentum 0.9 / weight decay 1e-5, batch 10,
1600 epochs, MSE loss). ``tiny`` and ``small`` are ours: see ``PRESETS`` for why they differ.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

ARCHITECTURES = ("med3d", "dae_unet")
DEPTHS = (10, 18, 34)
BOTTLENECKS = ("global", "spatial")
OPTIMIZERS = ("sgd", "adam")
LR_SCHEDULES = ("constant", "cosine")


def positive_number(value: float) -> bool:
    """A number above 0 (NaN and infinity are not: a NaN fails every comparison, so a check
    written ``value <= 0`` lets it through). The one test of every option that must be one."""
    return math.isfinite(value) and value > 0


def non_negative_number(value: float) -> bool:
    """A number of 0 or more (not NaN, not infinity)."""
    return math.isfinite(value) and value >= 0


@dataclass(frozen=True)
class ModelConfig:
    """The 3D autoencoder's shape.

    Attributes:
        architecture: ``med3d`` = the thesis's Med3D-ResNet encoder and mirror decoder
            (``ctae_core.model``); ``dae_unet`` = a denoising 3D U-Net with skip connections
            (``ctae_core.unet``; ``widths`` per level, its latent is the bottleneck averaged over
            space, so ``latent`` must equal ``widths[3]``; depth and bottleneck are ignored).
            Runs stored before the field existed are ``med3d``.
        depth: Med3D ResNet depth of the encoder: 10, 18 or 34 (BasicBlock).
        widths: Channels of the stem/layer1, layer2, layer3, layer4 (Med3D: 64, 128, 256, 512).
        latent: Size of the latent vector ``encode()`` returns (thesis 1024). In ``spatial``
            mode it is also the channel count of the latent map.
        bottleneck: ``global`` = conv → adaptive average pool → vector → decoder (thesis);
            ``spatial`` = fully convolutional: the latent is a map at 1/8 of the input size,
            so any input size works and reconstruction quality does not depend on scan size.
        input_size_zyx: Padded input (Z, Y, X) voxels; fixes the decoder's seed grid in
            ``global`` mode. Ignored by ``spatial`` mode.
        decoder_head_channels: Channels of the decoder's first map in ``global`` mode (a
            transposed conv from the 1×1×1 latent to the encoder's output grid).
        decoder_blocks: BasicBlocks per decoder stage; ``None`` mirrors the encoder's depth.
    """

    architecture: str = "med3d"
    depth: int = 34
    widths: tuple[int, int, int, int] = (64, 128, 256, 512)
    latent: int = 1024
    bottleneck: str = "global"
    input_size_zyx: tuple[int, int, int] = (273, 87, 87)
    decoder_head_channels: int = 16
    decoder_blocks: int | None = None

    def __post_init__(self) -> None:
        if self.depth not in DEPTHS:
            raise ValueError(f"model depth must be one of {DEPTHS}, not {self.depth}")
        if self.bottleneck not in BOTTLENECKS:
            raise ValueError(f"bottleneck must be one of {BOTTLENECKS}, not {self.bottleneck!r}")
        if len(self.widths) != 4 or min(self.widths) < 1:
            raise ValueError(f"widths must be 4 positive channel counts, not {self.widths}")
        if self.latent < 1:
            raise ValueError(f"latent must be >= 1, not {self.latent}")
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"architecture must be one of {ARCHITECTURES}, not {self.architecture!r}")
        if self.architecture == "dae_unet" and self.latent != self.widths[3]:
            raise ValueError(f"the dae_unet latent is its bottleneck's {self.widths[3]} channels, "
                             f"not {self.latent}; leave --latent unset for this preset")


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on; stored with the run (``runs.config_json``).

    Attributes:
        preset: Name of the preset the run started from.
        spacing_mm: Isotropic model input spacing; stored volumes are resampled to it on the fly.
        pad_size_zyx: Fixed padded size (Z, Y, X) at ``spacing_mm``; ``None`` = the largest
            training scan (rounded up to a multiple of 8 in ``spatial`` mode).
        slab_z: Train on random z-slabs of this many slices instead of whole padded scans
            (thesis 5.4); ``None`` trains on whole scans. Validation always uses whole scans.
        epochs, batch_size, lr, momentum, weight_decay, optimizer: the optimisation (Table 3.1).
        lr_schedule: ``constant`` (thesis) or ``cosine``: lr falls from ``lr`` to 1 % of it over
            ``epochs`` (see :func:`learning_rate`).
        output_lr_factor: The ``dae_unet``'s 1×1 output layer learns at this multiple of the
            rate. Adam moves every weight by about the rate per step whatever its scale, and
            that layer's nine weights must grow to order 1 to map the last block's normalised
            features back onto HU: at 2e-3 that takes a few hundred steps, more than a whole
            ``tiny_dae`` run, so the initial weights decided whether the model learned anatomy.
        early_stopping: Stop after this many validated epochs without a better validation loss;
            0 = off.
        validate_from: Epochs that end before this share of the schedule (0-1) are not
            validated: no validation MSE, never the weights kept. The last epoch always is. 0 =
            every epoch (the thesis); see ``TINY_DAE`` for why the U-Net starts at half.
        seed: Seeds the split, the initial weights, the order and the random placement.
        val_fraction, test_fraction: The split (thesis: 10 % each).
        patch_size: Train on random cubes of this many voxels a side, centred on body voxels
            (``dae_unet``); ``None`` trains on slabs or whole scans. An epoch draws
            ``patches_per_scan`` cubes from every training scan.
        patches_per_scan: Cubes per training scan per epoch.
        noise_std: SD (normalised units) of the coarse noise added to the training input
            (the target stays clean: a denoising autoencoder); 0 = a plain autoencoder.
        noise_cell: Voxels per cell of the grid the coarse noise is drawn on.
        window: Side of the windows a fully convolutional model is run over a whole scan in
            (``dae_unet``: sliding windows, overlap ¼, Gaussian blending); ``None`` = one pass.
        normal_error_scans: After training, reconstruct up to this many training scans and fit
            the model's usual |error| per HU × edge-strength context (``ctae_core.error_norm``,
            stored in the checkpoint); the anomaly map is then the |error| above it. 0 = the
            raw |error| is the map.
        model: The autoencoder.
    """

    preset: str = "thesis"
    spacing_mm: float = 3.0
    pad_size_zyx: tuple[int, int, int] | None = (273, 87, 87)
    slab_z: int | None = None
    epochs: int = 1600
    batch_size: int = 10
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 1e-5
    optimizer: str = "sgd"
    lr_schedule: str = "constant"
    output_lr_factor: float = 1.0
    early_stopping: int = 0
    validate_from: float = 0.0
    seed: int = 0
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    patch_size: int | None = None
    patches_per_scan: int = 1
    noise_std: float = 0.0
    noise_cell: int = 8
    window: int | None = None
    normal_error_scans: int = 0
    model: ModelConfig = field(default_factory=ModelConfig)

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, not {self.optimizer!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, not {self.lr_schedule!r}")
        if not positive_number(self.spacing_mm):
            raise ValueError(f"spacing must be a positive number of mm, not {self.spacing_mm}")
        if not positive_number(self.lr):
            raise ValueError(f"the learning rate must be a positive number, not {self.lr}")
        for name in ("noise_std", "weight_decay", "momentum"):
            if not non_negative_number(getattr(self, name)):
                raise ValueError(f"{name} must be a number >= 0, not {getattr(self, name)}")
        if self.patches_per_scan < 1:
            raise ValueError(f"patches_per_scan must be >= 1, not {self.patches_per_scan}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"epochs and batch size must be >= 1, not {self.epochs}, {self.batch_size}")
        if self.pad_size_zyx is not None and min(self.pad_size_zyx) < 1:
            raise ValueError(f"pad size must be 3 positive voxel counts, not {self.pad_size_zyx}")
        for name in ("patch_size", "window"):
            side = getattr(self, name)
            if side is not None and (side < 8 or side % 8):
                raise ValueError(f"{name} must be a multiple of 8 voxels, not {side}")
        if not positive_number(self.output_lr_factor):
            raise ValueError(f"output_lr_factor must be > 0, not {self.output_lr_factor}")
        if self.output_lr_factor != 1.0 and self.model.architecture != "dae_unet":
            raise ValueError("output_lr_factor applies to the dae_unet's output layer; the "
                             f"{self.model.architecture} model trains at one rate")
        if not 0.0 <= self.validate_from <= 1.0:
            raise ValueError(f"validate_from is a share of the schedule, 0 to 1, not {self.validate_from}")
        if self.early_stopping < 0:
            raise ValueError(f"early_stopping must be >= 0 (0: off), not {self.early_stopping}")
        if self.normal_error_scans < 0:
            raise ValueError(f"normal_error_scans must be >= 0, not {self.normal_error_scans}")
        if self.noise_std < 0 or self.noise_cell < 1 or self.patches_per_scan < 1:
            raise ValueError(f"noise SD must be >= 0 and noise cell, patches per scan >= 1, not "
                             f"{self.noise_std}, {self.noise_cell}, {self.patches_per_scan}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (tuples become lists)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Rebuild from ``to_dict()`` output; unknown keys are an error (a foreign config)."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown TrainConfig keys {sorted(unknown)}; was it written by ctae?")
        values = dict(data)
        values["model"] = model_config_from_dict(values.get("model", {}))
        if values.get("pad_size_zyx") is not None:
            values["pad_size_zyx"] = tuple(int(v) for v in values["pad_size_zyx"])
        return cls(**values)


def model_config_from_dict(data: dict[str, Any]) -> ModelConfig:
    """Rebuild a ModelConfig from its ``asdict`` form (lists back to tuples)."""
    known = {f.name for f in fields(ModelConfig)}
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"unknown ModelConfig keys {sorted(unknown)}; was it written by ctae?")
    values = dict(data)
    for key in ("widths", "input_size_zyx"):
        if key in values:
            values[key] = tuple(int(v) for v in values[key])
    return ModelConfig(**values)


THESIS = TrainConfig()

# tiny: the Med3D autoencoder for 2 CPU cores (the default until stop 36). 6 mm (8× fewer
# voxels than 3 mm), ResNet10 with 1/8 of Med3D's widths, a fully convolutional (spatial)
# latent, and 16-slice z-slabs: every scan, short or long, is seen through the same window, so
# long scans neither dominate the loss nor reconstruct worse, and MSE_m stays independent of
# scan size (thesis 4.x, 5.4). Slabs overhang the scan ends by up to half a slab so the model
# also learns the scan/air boundary that whole-scan scoring shows it. Adam at 1e-2 converges in
# 12 epochs where SGD at lr 0.05 needs hundreds; a 64-channel latent map (8× compression of 8³
# voxels) measured sharper than 16 channels at no extra time (see the report of issue 4).
TINY = TrainConfig(
    preset="tiny",
    spacing_mm=6.0,
    pad_size_zyx=None,
    slab_z=16,
    epochs=12,
    batch_size=8,
    lr=1e-2,
    optimizer="adam",
    weight_decay=0.0,
    model=ModelConfig(depth=10, widths=(8, 16, 32, 48), latent=64, bottleneck="spatial"),
)

# small: the same recipe at the stored 3 mm spacing with twice the widths; minutes per epoch
# on a CPU, seconds on a GPU.
SMALL = replace(
    TINY,
    preset="small",
    spacing_mm=3.0,
    slab_z=32,
    epochs=40,
    lr=2e-3,
    model=ModelConfig(depth=18, widths=(16, 32, 64, 96), latent=32, bottleneck="spatial"),
)

# The default is the tiny_dae U-Net (since stop 36): on six real-anatomy seeds held out for the
# choice (215-220, rule written first) it detected as well as tiny (outlier score AUROC 0.961
# against 0.960, recall at T 0.705 against 0.713, 6 against 4 of 714 inliers flagged), put its
# hottest region within 10 mm of more objects (41 against 36 of 53), and the demo stays under
# 10 minutes (README "Reconstruction and localisation"). tiny and small stay the Med3D autoencoder.

# tiny_dae: a denoising U-Net (Kascenas et al., MIDL 2022) at the
# stored 3 mm. Skip connections draw bone, vessels and organ edges at full resolution; coarse
# noise on the input (SD 0.3 of the normalised HU, ~140 HU at the usual σ ≈ 460 HU, on an 8-voxel
# grid, ~24 mm blobs) stops them from copying it, so what the model never saw (metal, cables,
# devices) is not reproduced and lights up the anomaly map. 32³ cubes (96 mm) centred on the body:
# a cube costs the same for a short scan as for a long one, so no scan size dominates the loss.
# 2 cubes per training scan per epoch and 7 epochs fit the demo's budget (4,032 cubes from its
# 288 training scans: 154 s). 7 epochs at SD 0.3 since stop 39, 5 at SD 0.2 before (3 until stop
# 37): on six held-out real-anatomy seeds (245-250, rule written first) the validation inliers'
# body RMS fell 74 -> 70 HU with the same detection (AUROC 0.982 against 0.981) and localisation
# (50 against 51 of 55 hottest regions within 10 mm); 7 epochs at SD 0.2 had reconstructed closer
# still but found 3 fewer objects on stop 38's seeds: the stronger noise makes the longer training
# repair more rather than copy (docs/reconstruction-history.md "Stop 39"). Scoring runs 192³ windows over the whole scan
# (BatchNorm keeps the result independent of the window; a 3 mm body fits one window in plane, so
# nothing is computed twice). Adam 2e-3 with a cosine fall; the 1x1 output layer at 10x the rate
# since stop 42: at one rate its nine weights needed more steps than a run has to reach order 1,
# so the initial weights decided whether the model learned anatomy (init seed 1: body RMS 112-164
# HU where seed 0 gave 63-90; at 10x, 57-71 HU). On four held-out real-anatomy seeds (269-272,
# rule written first) it detected as one rate did (AUROC 0.9745 against 0.9719, 1 of 476 inliers
# flagged by each, the same 35 of 38 hottest regions within 10 mm, body RMS 78.5 against 78.0 HU;
# docs/reconstruction-history.md "Stop 42"); stop 41's eight seeds had given the same picture. Validation (the whole
# validation scans reconstructed, about half of each demo epoch then, a quarter since stop 53) starts at half the schedule since
# stop 47: in the 33 seven-epoch runs with a training history on stop 47's machine (seeds 321-340,
# demos) the best epoch was 4-7 every time (4 once, 5 eight, 6 fourteen, 7 ten), as a cosine
# fall makes it; training draws nothing from validation, so the weights kept are the same.
TINY_DAE = TrainConfig(
    preset="tiny_dae",
    spacing_mm=3.0,
    pad_size_zyx=None,
    epochs=7,
    batch_size=8,
    lr=2e-3,
    lr_schedule="cosine",
    output_lr_factor=10.0,
    validate_from=0.5,
    optimizer="adam",
    weight_decay=0.0,
    patch_size=32,
    patches_per_scan=2,
    noise_std=0.3,
    noise_cell=8,
    window=192,
    model=ModelConfig(architecture="dae_unet", widths=(8, 16, 32, 64), latent=64),
)

# small_dae: the same recipe with twice the widths and 64³ cubes; minutes per epoch on a CPU,
# seconds on a GPU. It keeps the input noise SD 0.2 it was set up with (stop 39 measured SD 0.3
# on tiny_dae only), one learning rate for every layer (stop 41 measured the output layer's
# faster rate on tiny_dae only; 40 epochs give it ten times the steps) and validates every epoch
# (stop 47 measured where tiny_dae's best epochs fall, not small_dae's).
SMALL_DAE = replace(
    TINY_DAE,
    preset="small_dae",
    epochs=40,
    output_lr_factor=1.0,
    validate_from=0.0,
    noise_std=0.2,
    patch_size=64,
    patches_per_scan=4,
    window=128,
    model=ModelConfig(architecture="dae_unet", widths=(16, 32, 64, 128), latent=128),
)

PRESETS: dict[str, TrainConfig] = {"tiny": TINY, "small": SMALL, "thesis": THESIS,
                                   "tiny_dae": TINY_DAE, "small_dae": SMALL_DAE}

DEFAULT_PRESET = "tiny_dae"
"""The preset `ctae train` and `ctae demo` use when none is named."""


def preset(name: str) -> TrainConfig:
    """The named preset's TrainConfig."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[name]


def with_overrides(cfg: TrainConfig, **overrides: Any) -> TrainConfig:
    """A copy of ``cfg`` with the non-None overrides applied; ``depth``/``latent`` go to the model."""
    overrides = {k: v for k, v in overrides.items() if v is not None}
    model_keys = {f.name for f in fields(ModelConfig)}
    model_over = {k: overrides.pop(k) for k in list(overrides) if k in model_keys}
    model = replace(cfg.model, **model_over) if model_over else cfg.model
    return replace(cfg, model=model, **overrides)


def learning_rate(cfg: TrainConfig, epoch: int, within: float = 0.0) -> float:
    """The learning rate at ``within`` (0 ≤ within ≤ 1) of the way through 0-based ``epoch``:
    ``cfg.lr`` throughout (constant), or a half cosine over the whole run, from ``cfg.lr`` at its
    first step towards 1 % of it at its end (cosine), set at every step. Stateless, so a resumed run
    continues on the same curve. (Until stop 30 the rate was set once per epoch and reached its
    floor at the start of the last epoch: `tiny_dae`'s third of three epochs then trained at 1 %
    of its rate.)"""
    if cfg.lr_schedule == "constant":
        return cfg.lr
    floor = 0.01 * cfg.lr
    progress = min(max((epoch + within) / cfg.epochs, 0.0), 1.0)
    return floor + 0.5 * (cfg.lr - floor) * (1.0 + math.cos(math.pi * progress))
