"""Where a scan's grids sit in patient space: voxel-to-millimetre affines (LPS and NIfTI's RAS)
of the source series, the stored isotropic volume and the run's reconstruction / |error| grids.

Arrays are (Z, Y, X); an affine maps the voxel index (x, y, z) — NIfTI's (i, j, k) — to mm.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
"""DICOM / ITK patient coordinates (x left, y posterior) to NIfTI's (x right, y anterior)."""


def lps_affine(
    spacing_zyx_mm: Sequence[float],
    origin_xyz_mm: Sequence[float] = (0.0, 0.0, 0.0),
    direction: Sequence[float] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0),
) -> np.ndarray:
    """4×4 affine from voxel index (x, y, z) to LPS mm; ``direction`` row-major as SimpleITK's."""
    dz, dy, dx = (float(v) for v in spacing_zyx_mm)
    affine = np.eye(4)
    affine[:3, :3] = np.asarray(direction, dtype=float).reshape(3, 3) * np.array([dx, dy, dz])
    affine[:3, 3] = np.asarray(origin_xyz_mm, dtype=float)
    return affine


def ras_affine(*args, **kwargs) -> np.ndarray:
    """The NIfTI (RAS) affine of :func:`lps_affine`'s grid."""
    return LPS_TO_RAS @ lps_affine(*args, **kwargs)


def rescaled_grid(
    shape_zyx: Sequence[int],
    spacing_mm: float,
    origin_xyz_mm: Sequence[float],
    new_shape_zyx: Sequence[int],
) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """(spacing_zyx, origin_xyz) of a grid of ``new_shape_zyx`` voxels spanning the same box as an
    isotropic axis-aligned grid — how ``ctae_core.data.rescale_volume`` places the run's
    reconstruction and |error| (voxel edges on the stored volume's edges)."""
    extent = np.asarray(shape_zyx, dtype=float) * float(spacing_mm)
    spacing_zyx = extent / np.maximum(np.asarray(new_shape_zyx, dtype=float), 1.0)
    origin = np.asarray(origin_xyz_mm, dtype=float) + (spacing_zyx[::-1] - float(spacing_mm)) / 2
    return (
        tuple(float(v) for v in spacing_zyx),  # type: ignore[return-value]
        tuple(float(v) for v in origin),  # type: ignore[return-value]
    )


def voxel_of(affine: np.ndarray, point_mm: Sequence[float]) -> np.ndarray:
    """The (fractional) voxel index (x, y, z) of a point given in the affine's frame."""
    return np.linalg.solve(affine, np.append(np.asarray(point_mm, dtype=float), 1.0))[:3]
