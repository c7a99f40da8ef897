"""NIfTI-1 images of HU volumes for 3D Slicer, ITK-SNAP, MONAI, nnU-Net and the browser viewer
(nibabel). Output is deterministic: the same array and affine give the same bytes (gzip with
a zero timestamp), so an export can be re-created byte for byte.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np


def nifti_bytes(
    volume_zyx: np.ndarray, affine_ras: np.ndarray, *, compress: bool = True, compresslevel: int = 1
) -> bytes:
    """A (Z, Y, X) array as NIfTI-1 bytes (``.nii.gz`` when ``compress``, else ``.nii``).

    Args:
        volume_zyx: Voxels (Z, Y, X), any integer or float dtype (kept as is; int16 for HU).
        affine_ras: 4×4 affine from voxel index (x, y, z) to RAS mm
            (``ctae_core.geometry.ras_affine``).
        compress: gzip (CT compresses ~3×; level 9 is 10× slower than 1 for ~5 % less).
        compresslevel: 1 for files; 0 frames the bytes as gzip without compressing them (as
            fast as a copy), for the viewer, whose server would otherwise gzip them at level 9.
    """
    import nibabel as nib

    data = np.asarray(volume_zyx).transpose(2, 1, 0)  # (X, Y, Z): NIfTI's i fastest, no copy
    image = nib.Nifti1Image(data, np.asarray(affine_ras, dtype=float))
    image.header.set_xyzt_units("mm")
    image.header.set_qform(image.affine, code=1)
    image.header.set_sform(image.affine, code=1)
    raw = image.to_bytes()
    return gzip.compress(raw, compresslevel=compresslevel, mtime=0) if compress else raw


def write_nifti(
    path: Path | str, volume_zyx: np.ndarray, affine_ras: np.ndarray, compresslevel: int = 1
) -> Path:
    """Write a ``.nii`` / ``.nii.gz`` atomically (temp file + rename); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(nifti_bytes(volume_zyx, affine_ras, compress=path.suffix == ".gz",
                                compresslevel=compresslevel))
    os.replace(tmp, path)
    return path


def store_nifti(array_path: str, volume_path: str, spacing_mm: float) -> bytes:
    """A stored array (the scan's volume, or a run's reconstruction / |error| of it) as
    ``.nii.gz`` bytes, placed on the scan's stored isotropic grid (origin at 0 mm)."""
    from ctae_core.geometry import ras_affine, rescaled_grid
    from ctae_core.io.volume_store import load_volume

    array = load_volume(array_path)
    shape = array.shape if array_path == volume_path else load_volume(volume_path).shape
    spacing_zyx, origin = rescaled_grid(shape, spacing_mm, (0.0, 0.0, 0.0), array.shape)
    return nifti_bytes(np.asarray(array), ras_affine(spacing_zyx, origin))
