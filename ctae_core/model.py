"""The 3D convolutional autoencoder: a Med3D ResNet encoder and a decoder that mirrors it.

Encoder (Chen et al., Med3D / MedicalNet, thesis 3.3): conv 7³ stride 2 → BN → ReLU →
max-pool stride 2 → layer1..layer4 of BasicBlocks (layer2 stride 2, layer3/layer4 dilated 2/4),
so its output grid is ⌈input / 8⌉. Then a 1×1×1 convolution to ``latent`` channels and, in
``global`` mode (thesis), adaptive average pooling to one latent vector. In ``spatial`` mode the
latent stays a map (fully convolutional); ``encode()`` still returns a vector by pooling it.
The decoder mirrors the encoder (dilated stages, then three ×2 transposed convolutions) and
crops to the input size. Submodule names of the encoder match MedicalNet checkpoints.
"""

from __future__ import annotations

import torch
from torch import nn

from ctae_core.config import ModelConfig
from ctae_core.unet import DenoisingUNet3D

STAGE_DEPTHS = {10: (1, 1, 1, 1), 18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}
DOWNSAMPLING = 8
"""Input extent / latent grid extent (stem stride 2, max-pool 2, layer2 stride 2)."""


def _conv3(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Conv3d:
    return nn.Conv3d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)


class BasicBlock(nn.Module):
    """ResNet BasicBlock in 3D (two 3³ convolutions + identity or 1×1×1 projection, Med3D type B)."""

    def __init__(self, cin: int, cout: int, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        self.conv1 = _conv3(cin, cout, stride, dilation)
        self.bn1 = nn.BatchNorm3d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3(cout, cout, 1, dilation)
        self.bn2 = nn.BatchNorm3d(cout)
        self.downsample: nn.Module | None = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                nn.Conv3d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm3d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


def _stage(cin: int, cout: int, blocks: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    layers = [BasicBlock(cin, cout, stride, dilation)]
    layers += [BasicBlock(cout, cout, 1, dilation) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


class Med3DEncoder(nn.Module):
    """Med3D ResNet10/18/34 trunk (no segmentation head): (B, 1, Z, Y, X) → (B, w4, ⌈Z/8⌉, …)."""

    def __init__(self, depth: int, widths: tuple[int, int, int, int]) -> None:
        super().__init__()
        d = STAGE_DEPTHS[depth]
        self.conv1 = nn.Conv3d(1, widths[0], 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm3d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool3d(3, stride=2, padding=1)
        self.layer1 = _stage(widths[0], widths[0], d[0])
        self.layer2 = _stage(widths[0], widths[1], d[1], stride=2)
        self.layer3 = _stage(widths[1], widths[2], d[2], dilation=2)
        self.layer4 = _stage(widths[2], widths[3], d[3], dilation=4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


def _up(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.ConvTranspose3d(cin, cout, 2, stride=2, bias=False), nn.BatchNorm3d(cout), nn.ReLU(inplace=True)
    )


class MirrorDecoder(nn.Module):
    """Mirror of the encoder: latent map (B, latent, g) → (B, 1, 8·g) before cropping."""

    def __init__(self, cfg: ModelConfig, seed_grid: tuple[int, int, int] | None) -> None:
        super().__init__()
        w = cfg.widths
        d = (cfg.decoder_blocks,) * 4 if cfg.decoder_blocks else STAGE_DEPTHS[cfg.depth]
        if seed_grid is None:  # spatial: the latent is already a map on the grid
            head: list[nn.Module] = [nn.Conv3d(cfg.latent, w[3], 1, bias=False)]
        else:  # global: a transposed conv spreads the 1×1×1 latent over the encoder's grid
            head = [
                nn.ConvTranspose3d(cfg.latent, cfg.decoder_head_channels, seed_grid, bias=False),
                nn.BatchNorm3d(cfg.decoder_head_channels),
                nn.ReLU(inplace=True),
                nn.Conv3d(cfg.decoder_head_channels, w[3], 1, bias=False),
            ]
        self.head = nn.Sequential(*head, nn.BatchNorm3d(w[3]), nn.ReLU(inplace=True))
        self.layer4 = _stage(w[3], w[3], d[3], dilation=4)
        self.layer3 = _stage(w[3], w[2], d[2], dilation=2)
        self.layer2 = nn.Sequential(_stage(w[2], w[1], d[1]), _up(w[1], w[0]))
        self.layer1 = nn.Sequential(_stage(w[0], w[0], d[0]), _up(w[0], w[0]))
        self.stem = nn.Sequential(_up(w[0], w[0]), nn.Conv3d(w[0], 1, 3, padding=1))

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        x = self.layer3(self.layer4(self.head(code)))
        return self.stem(self.layer1(self.layer2(x)))


def latent_grid(size_zyx: tuple[int, int, int]) -> tuple[int, int, int]:
    """The encoder's output grid for an input of ``size_zyx``: ⌈n / 8⌉ per axis."""
    return tuple(-(-int(n) // DOWNSAMPLING) for n in size_zyx)  # type: ignore[return-value]


class ConvAutoencoder3D(nn.Module):
    """The thesis's autoencoder, built from a ModelConfig.

    Shapes: input (B, 1, Z, Y, X) normalised HU; ``encode`` → (B, latent); ``forward`` →
    reconstruction of the input's shape. In ``global`` mode (Z, Y, X) must equal
    ``cfg.input_size_zyx``; in ``spatial`` mode any size works.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = Med3DEncoder(cfg.depth, cfg.widths)
        self.to_latent = nn.Conv3d(cfg.widths[3], cfg.latent, 1)
        self.pool = nn.AdaptiveAvgPool3d(1)
        seed = latent_grid(cfg.input_size_zyx) if cfg.bottleneck == "global" else None
        self.decoder = MirrorDecoder(cfg, seed)
        _init_weights(self)

    def _check(self, x: torch.Tensor) -> None:
        if x.ndim != 5 or x.shape[1] != 1:
            raise ValueError(f"autoencoder input must be (B, 1, Z, Y, X), not {tuple(x.shape)}")
        if self.cfg.bottleneck == "global" and tuple(x.shape[2:]) != tuple(self.cfg.input_size_zyx):
            raise ValueError(
                f"input size {tuple(x.shape[2:])} differs from the model's padded size "
                f"{self.cfg.input_size_zyx}; pad scans with ctae_core.padding.pad_to_size first"
            )

    def encode_map(self, x: torch.Tensor) -> torch.Tensor:
        """Latent map before pooling: (B, latent, ⌈Z/8⌉, ⌈Y/8⌉, ⌈X/8⌉)."""
        self._check(x)
        return self.to_latent(self.encoder(x))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Latent vectors (B, latent): the adaptive average pool of the latent map."""
        return self.pool(self.encode_map(x)).flatten(1)

    def decode(self, z: torch.Tensor, size_zyx: tuple[int, int, int] | None = None) -> torch.Tensor:
        """Reconstruction (B, 1, Z, Y, X) from latent vectors (global) or latent maps (spatial).

        Args:
            z: (B, latent) in global mode, or (B, latent, gz, gy, gx) in spatial mode.
            size_zyx: Output size to crop to; default the configured input size (global) or
                8× the latent grid (spatial).
        """
        if self.cfg.bottleneck == "global":
            if z.ndim != 2:
                raise ValueError(f"global decoder takes (B, latent) vectors, not {tuple(z.shape)}")
            z = z[:, :, None, None, None]
            size_zyx = size_zyx or self.cfg.input_size_zyx
        elif z.ndim != 5:
            raise ValueError(f"spatial decoder takes (B, latent, gz, gy, gx) maps, not {tuple(z.shape)}")
        out = self.decoder(z)
        if size_zyx is None:
            return out
        return out[:, :, : size_zyx[0], : size_zyx[1], : size_zyx[2]]

    def reconstruct_and_encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(reconstruction (B, 1, Z, Y, X), latent vectors (B, latent)) in one pass."""
        code = self.encode_map(x)
        latent = self.pool(code).flatten(1)
        z = latent if self.cfg.bottleneck == "global" else code
        return self.decode(z, tuple(x.shape[2:])), latent

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruct ``x`` (B, 1, Z, Y, X) → same shape."""
        return self.reconstruct_and_encode(x)[0]


Autoencoder = ConvAutoencoder3D | DenoisingUNet3D
"""Either architecture: both have ``forward``, ``encode`` and ``reconstruct_and_encode``."""


def build_model(cfg: ModelConfig) -> Autoencoder:
    """The autoencoder ``cfg.architecture`` names (thesis Med3D-ResNet or the denoising U-Net)."""
    return DenoisingUNet3D(cfg) if cfg.architecture == "dae_unet" else ConvAutoencoder3D(cfg)


def _init_weights(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.Conv3d | nn.ConvTranspose3d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm3d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    if isinstance(model, ConvAutoencoder3D):  # start near "predict the mean": loss ≈ 1, not ≫ 1
        nn.init.normal_(model.decoder.stem[-1].weight, std=1e-3)
