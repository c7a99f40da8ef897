"""Write a voxel mask (an inserted object's ground truth) as a NIfTI file in patient space."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def write_mask(mask: np.ndarray, spacing_zyx_mm: Sequence[float], origin_xyz_mm: Sequence[float],
               path: Path | str) -> Path:
    """``mask`` (Z, Y, X) as uint8 NIfTI with identity direction (LPS in SimpleITK's terms) and
    this geometry, so it overlays the series written with the same origin and spacing."""
    import SimpleITK as sitk

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image = sitk.GetImageFromArray(np.ascontiguousarray(mask, dtype=np.uint8))
    image.SetSpacing(tuple(float(s) for s in reversed(tuple(spacing_zyx_mm))))
    image.SetOrigin(tuple(float(v) for v in origin_xyz_mm))
    sitk.WriteImage(image, str(path), useCompression=True)
    return path


def read_mask(path: Path | str) -> tuple[np.ndarray, tuple[float, float, float], tuple[float, float, float]]:
    """(mask (Z, Y, X) bool, spacing (Z, Y, X) mm, origin (x, y, z) mm) of a mask file."""
    import SimpleITK as sitk

    image = sitk.ReadImage(str(path))
    spacing = tuple(float(s) for s in reversed(image.GetSpacing()))
    return sitk.GetArrayFromImage(image).astype(bool), spacing, tuple(image.GetOrigin())  # type: ignore[return-value]
