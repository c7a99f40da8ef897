"""The Volume: HU voxels with their physical geometry."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ctae_core.types import SpacingZYX


@dataclass(frozen=True)
class Volume:
    """A CT volume in Hounsfield units.

    Attributes:
        hu: Array of shape (Z, Y, X); int16 once clipped and stored, float while processed.
        spacing_zyx_mm: Voxel spacing in mm, (Z, Y, X).
        origin_xyz_mm: Physical position of voxel (0, 0, 0) in patient (LPS) coordinates.
        direction: 3×3 direction cosines, row-major, as SimpleITK reports them (x, y, z axes).
    """

    hu: np.ndarray
    spacing_zyx_mm: SpacingZYX
    origin_xyz_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    direction: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(Z, Y, X) voxel counts."""
        return tuple(int(n) for n in self.hu.shape)  # type: ignore[return-value]

    def __repr__(self) -> str:
        spacing = ", ".join(f"{s:.2f}" for s in self.spacing_zyx_mm)
        return f"Volume(shape={self.shape}, spacing_zyx_mm=({spacing}), dtype={self.hu.dtype})"
