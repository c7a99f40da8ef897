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


MASK_COVER = 0.25
"""Share of a stored voxel a mask must cover (linear interpolation) for the voxel to count: a
thin cable or lead still marks the 3 mm voxels it runs through."""


def mask_on_stored_grid(path: Path | str, spacing_mm: float) -> np.ndarray:
    """A mask file resampled by physical position onto the grid ``ctae ingest`` stores its series
    on (isotropic ``spacing_mm``, canonical orientation; ``ctae_core.io.resample``): bool (Z, Y, X).

    The mask shares its series' geometry, so the grid ``isotropic_grid`` derives from it is the
    stored volume's grid."""
    import SimpleITK as sitk

    from ctae_core.io.resample import IDENTITY, isotropic_grid
    from ctae_core.volume import Volume

    image = sitk.ReadImage(str(path), sitk.sitkFloat32)
    source = Volume(sitk.GetArrayViewFromImage(image), tuple(reversed(image.GetSpacing())),
                    tuple(image.GetOrigin()), tuple(image.GetDirection()))
    grid_origin, size = isotropic_grid(source, spacing_mm)
    out = sitk.Resample(image, [int(n) for n in size], sitk.Transform(), sitk.sitkLinear,
                        [float(v) for v in grid_origin], [float(spacing_mm)] * 3, IDENTITY, 0.0,
                        sitk.sitkFloat32)
    return sitk.GetArrayFromImage(out) >= MASK_COVER
