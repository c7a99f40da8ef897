"""Compact metal measured on the acquired grid, before resampling: the volume of metal-dense
voxels that lie away from bone.

Why at the acquired resolution: a 1–3 mm ECG snap, a valve ring or a small foreign body is
averaged into bone-like HU by the 3 mm resampling, and the stored volume no longer tells it from
a rib. Why away from bone: real inliers already hold many dense voxels where a sharp kernel
overshoots at cortical bone (a B70f chest: 800–20,000 mm³ above 1500 HU), so a plain count
cannot tell metal; a snap on the skin, a ring in the heart or a disc in soft tissue sits among
soft tissue and air. Bone here is what a coarse neighbourhood says: the share of its voxels in
the range of cancellous and cortical bone (``BONE_HU``), which metal itself (above it) and soft
tissue (below it) do not raise.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

METAL_HU = 2000.0
"""Voxels at or above this are metal-dense (cortical bone peaks near 1500–1900 HU outside a
sharp kernel's overshoot)."""
BONE_HU = (200.0, 1500.0)
"""HU range counted as bone around a dense voxel."""
BLOCK_MM = 4.0
"""Edge of the coarse blocks the bone share is taken in; their 3×3×3 neighbourhood (~12 mm)
is a dense voxel's surroundings."""
MAX_BONE_SHARE = 0.05
"""A dense voxel whose surroundings hold less bone than this share lies away from bone."""


def native_metal_mm3(hu: np.ndarray, spacing_zyx_mm: tuple[float, float, float]) -> float:
    """mm³ of voxels at or above ``METAL_HU`` whose ~12 mm surroundings hold less than
    ``MAX_BONE_SHARE`` bone (``BONE_HU``), on the volume's own grid (Z, Y, X)."""
    hu = np.asarray(hu)
    dense = np.nonzero(hu >= METAL_HU)
    voxel_mm3 = float(np.prod(spacing_zyx_mm))
    if dense[0].size == 0:
        return 0.0
    block = [max(1, int(round(BLOCK_MM / s))) for s in spacing_zyx_mm]
    share = _bone_share(hu, block)
    index = tuple(np.minimum(axis // k, n - 1) for axis, k, n in zip(dense, block, share.shape, strict=True))
    return float(np.count_nonzero(share[index] < MAX_BONE_SHARE)) * voxel_mm3


def _bone_share(hu: np.ndarray, block: list[int]) -> np.ndarray:
    """Share of ``BONE_HU`` voxels in each coarse block's 3×3×3 neighbourhood of blocks."""
    padded = [-(-n // k) * k for n, k in zip(hu.shape, block, strict=True)]
    bone = np.zeros(padded, dtype=np.float32)
    bone[: hu.shape[0], : hu.shape[1], : hu.shape[2]] = (hu >= BONE_HU[0]) & (hu < BONE_HU[1])
    coarse = bone.reshape(padded[0] // block[0], block[0], padded[1] // block[1], block[1],
                          padded[2] // block[2], block[2]).mean(axis=(1, 3, 5))
    return ndimage.uniform_filter(coarse, size=3, mode="nearest")
