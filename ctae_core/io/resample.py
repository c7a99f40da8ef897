"""Canonical orientation and isotropic resampling of HU volumes (SimpleITK, linear; in io/ because
only ctae_core.io may use SimpleITK or pydicom).

Canonical orientation: the identity direction in patient LPS coordinates — array axis x runs
to the patient's left, y to posterior, z to superior, so ``hu[0]`` is the most inferior plane.
Axis-aligned inputs in any orientation (feet first, flipped rows) land on this grid without
loss; oblique, tilted (non-orthogonal direction) and uneven inputs are resampled into the
axis-aligned box that holds them.
"""

from __future__ import annotations

import numpy as np

from ctae_core.types import HUArray
from ctae_core.volume import Volume

BACKGROUND_HU = -1024.0
"""Value of grid points outside the input, and the lower clip of every stored volume."""

IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


def resample_isotropic(volume: Volume, spacing_mm: float = 3.0) -> Volume:
    """Resample to canonical orientation and isotropic ``spacing_mm``, as clipped int16 HU.

    Args:
        volume: HU volume (Z, Y, X) of any numeric dtype; its direction may be oblique or
            non-orthogonal (gantry tilt).
        spacing_mm: Target voxel size in mm, the same along every axis.

    Returns:
        Volume with int16 HU in [-1024, 32767], identity direction, spacing ``spacing_mm``
        and the size of the input's physical bounding box (voxel edges) divided by the
        spacing, rounded; grid centred on that box.

    Raises:
        ValueError: ``spacing_mm`` is not positive or the volume is empty.
    """
    import SimpleITK as sitk

    if spacing_mm <= 0:
        raise ValueError(f"spacing_mm must be positive, not {spacing_mm}")
    if volume.hu.size == 0:
        raise ValueError("cannot resample an empty volume")
    source = _to_sitk(volume)
    origin, size = isotropic_grid(volume, spacing_mm)
    resampled = sitk.Resample(
        source,
        [int(n) for n in size],
        sitk.Transform(),
        sitk.sitkLinear,
        [float(v) for v in origin],
        [float(spacing_mm)] * 3,
        IDENTITY,
        BACKGROUND_HU,
        sitk.sitkFloat32,
    )
    hu = to_int16_hu(sitk.GetArrayViewFromImage(resampled))
    return Volume(
        hu=hu,
        spacing_zyx_mm=(float(spacing_mm),) * 3,
        origin_xyz_mm=tuple(float(v) for v in origin),
        direction=IDENTITY,
    )


def to_int16_hu(hu: np.ndarray) -> HUArray:
    """Round and clip HU to [-1024, 32767] as int16."""
    return np.clip(np.rint(hu), BACKGROUND_HU, 32767).astype(np.int16)


def _to_sitk(volume: Volume):
    """A SimpleITK image of the volume, rounded to int16 HU (1 HU is far below CT noise).

    int16 halves the memory of float32 on large series and keeps ``Resample`` fast.
    """
    import SimpleITK as sitk

    hu = volume.hu
    if hu.dtype != np.int16:
        hu = np.clip(np.rint(hu), -32768, 32767).astype(np.int16)
    image = sitk.GetImageFromArray(np.ascontiguousarray(hu))
    dz, dy, dx = volume.spacing_zyx_mm
    image.SetSpacing((float(dx), float(dy), float(dz)))
    image.SetOrigin(tuple(float(v) for v in volume.origin_xyz_mm))
    image.SetDirection(tuple(float(v) for v in volume.direction))
    return image


def isotropic_grid(volume: Volume, spacing_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """Origin (x, y, z) and size (x, y, z) of the axis-aligned grid that covers the input
    (the grid ``resample_isotropic`` writes: the viewer places the stored volume with it)."""
    nz, ny, nx = volume.shape
    dz, dy, dx = volume.spacing_zyx_mm
    matrix = np.asarray(volume.direction, dtype=float).reshape(3, 3) * np.array([dx, dy, dz])
    corners = np.array(
        [[i, j, k] for i in (-0.5, nx - 0.5) for j in (-0.5, ny - 0.5) for k in (-0.5, nz - 0.5)]
    )
    physical = corners @ matrix.T + np.asarray(volume.origin_xyz_mm, dtype=float)
    low, high = physical.min(axis=0), physical.max(axis=0)
    extent = high - low
    size = np.maximum(1, np.rint(extent / spacing_mm)).astype(int)
    origin = low + (extent - (size - 1) * spacing_mm) / 2
    return origin, size
