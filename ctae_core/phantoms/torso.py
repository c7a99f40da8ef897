"""The small test torso: a few voxels of air, soft tissue, a bone rod and optional metal.

What tests, benchmarks and synthetic catalogs store when they need a body-like volume fast
(milliseconds, any shape); ``render_scan`` draws the demo cohort's realistic chests.
"""

from __future__ import annotations

import numpy as np

AIR_HU = -1024
SOFT_TISSUE_HU = 30  # the torso phantom's one body value
BONE_HU = 600
METAL_HU = 3000


def torso(
    shape_zyx: tuple[int, int, int], rng: np.random.Generator, *, metal: bool = False,
    noise_sd_hu: float = 10.0,
) -> np.ndarray:
    """int16 HU (Z, Y, X): air around a soft-tissue elliptic cylinder along Z (semi-axes 0.4 Y,
    0.45 X), a bone rod behind its centre, with ``metal`` a 6-voxel cube of metal inside it;
    Gaussian noise of ``noise_sd_hu`` (truncated to whole HU) inside the body."""
    nz, ny, nx = shape_zyx
    _, y, x = np.ogrid[:nz, :ny, :nx]
    vol = np.full(shape_zyx, AIR_HU, dtype=np.int16)
    body = ((y - ny / 2) / (0.4 * ny)) ** 2 + ((x - nx / 2) / (0.45 * nx)) ** 2 <= 1
    vol[np.broadcast_to(body, shape_zyx)] = SOFT_TISSUE_HU
    vol[np.broadcast_to((y - 0.65 * ny) ** 2 + (x - nx / 2) ** 2 <= 4, shape_zyx)] = BONE_HU
    if metal:
        z0, y0, x0 = nz // 4, int(0.375 * ny), nx // 4
        vol[z0 : z0 + 6, y0 : y0 + 6, x0 : x0 + 6] = METAL_HU
    noise = rng.normal(0, noise_sd_hu, shape_zyx).astype(np.int16)
    return vol + noise * (vol > AIR_HU)
