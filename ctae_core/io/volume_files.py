"""Read NIfTI / MHA / NRRD volume files as HU volumes (SimpleITK), refusing non-HU data.

Reason codes (``InvalidSeriesError.reason``): ``unreadable``, ``not_a_volume``, ``not_hu``,
``non_finite``, ``implausible_hu``, ``bad_header_value``.
"""

from __future__ import annotations

import gzip
import math
import struct

import numpy as np

from ctae_core.errors import InvalidSeriesError
from ctae_core.io.sources import ScanFacts
from ctae_core.stats import check_plausible_hu
from ctae_core.volume import Volume

MIN_SLICES = 8
MAX_NON_FINITE_FRACTION = 0.01
"""Above this share of NaN / infinite voxels a volume is refused; below, they become air."""


def read_volume_file(path: str, label: str = "") -> tuple[Volume, ScanFacts]:
    """Read a 3-D scalar volume file in HU (scl_slope / scl_inter applied by SimpleITK).

    Args:
        path: A ``.nii``, ``.nii.gz``, ``.mha``, ``.mhd``, ``.nrrd`` or ``.nhdr`` file.
        label: How to name the file in error messages (its relative path).

    Returns:
        The volume as float32 HU clipped below at -1024 with the file's geometry in LPS,
        and the facts learned (no device facts: volume files carry none).

    Raises:
        InvalidSeriesError: unreadable, not a 3-D scalar volume, or not in HU.
    """
    import SimpleITK as sitk

    label = label or path
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as err:
        first_line = str(err).strip().splitlines()[-1] if str(err).strip() else ""
        if "Zero-valued spacing" in str(err):  # an MHA / NRRD header's voxel size of 0
            raise InvalidSeriesError(
                f"{label}: the header gives a voxel size of 0 on an axis ({first_line}); write "
                "the file again with its voxel size", "bad_header_value") from err
        raise InvalidSeriesError(
            f"{label}: SimpleITK cannot read this file ({first_line}); is it complete?",
            "unreadable",
        ) from err
    image = _as_3d_scalar(image, label)
    _check_pixel_type(image, label)
    if str(path).lower().endswith((".nii", ".nii.gz")):
        _check_nifti_voxel_size(path, label)
    hu = sitk.GetArrayFromImage(image).astype(np.float32, copy=False)
    try:
        is_nifti = str(path).lower().endswith((".nii", ".nii.gz"))
        lost = _nifti_non_finite(path) if is_nifti else None
    except (OSError, EOFError, ValueError, struct.error):
        lost = None  # ITK read it; only the NaN count is lost
    if lost is not None and lost.shape == hu.shape:
        hu[lost] = np.nan  # the NIfTI reader silently turned them into 0
    warnings = _repair_non_finite(hu, label)
    check_plausible_hu(hu, label)
    np.maximum(hu, -1024.0, out=hu)
    dx, dy, dz = image.GetSpacing()
    volume = Volume(
        hu=hu,
        spacing_zyx_mm=(float(dz), float(dy), float(dx)),
        origin_xyz_mm=tuple(float(v) for v in image.GetOrigin()),
        direction=tuple(float(v) for v in image.GetDirection()),
    )
    facts = ScanFacts(
        orig_size_zyx=volume.shape,
        orig_spacing_zyx_mm=volume.spacing_zyx_mm,
        orig_direction=volume.direction,
        warnings=warnings,
    )
    return volume, facts


def silence_itk_warnings() -> None:
    """Stop ITK printing warnings (they quote absolute paths) in this process."""
    import SimpleITK as sitk

    sitk.ProcessObject.SetGlobalWarningDisplay(False)


def _check_nifti_voxel_size(path: str, label: str) -> None:
    """Refuse a NIfTI whose header gives a voxel size of 0 (or not a number) on an axis: ITK and
    nibabel read it as 1 mm without a word (until stop 57 such a scan was stored at 1 mm, its
    body scaled by however far that is from the truth)."""
    try:
        sizes = _nifti_pixdim(path)
    except (OSError, EOFError, ValueError, struct.error):
        return  # ITK read the file; a header that cannot be read again is its concern
    if sizes is not None and not all(math.isfinite(v) and v != 0 for v in sizes):
        shown = " × ".join(f"{v:g}" for v in sizes)
        raise InvalidSeriesError(
            f"{label}: the header gives a voxel size of {shown} mm (pixdim[1..3]); a size of 0 "
            "would be read as 1 mm and the body scaled wrongly: write the file again with its "
            "voxel size", "bad_header_value")


def _nifti_pixdim(path: str) -> tuple[float, float, float] | None:
    """pixdim[1..3] of a NIfTI-1 header as written (None for a NIfTI-2 file)."""
    opener = gzip.open if str(path).lower().endswith(".gz") else open
    with opener(path, "rb") as handle:
        header = handle.read(348)
    if len(header) < 348:
        return None
    for endian in ("<", ">"):
        if struct.unpack(endian + "i", header[:4])[0] == 348:
            return struct.unpack(endian + "3f", header[80:92])
    return None


def _nifti_non_finite(path: str) -> np.ndarray | None:
    """Where a float NIfTI-1 file holds NaN / ±inf, (Z, Y, X); None for other files.

    ITK's NIfTI reader replaces such voxels by 0 without a word, so they are found here.
    """
    opener = gzip.open if str(path).lower().endswith(".gz") else open
    with opener(path, "rb") as handle:
        header = handle.read(348)
        if len(header) < 348:
            return None
        endian = "<" if struct.unpack("<i", header[:4])[0] == 348 else ">"
        dims = struct.unpack(endian + "8h", header[40:56])
        dtype = {16: "f4", 64: "f8"}.get(struct.unpack(endian + "h", header[70:72])[0])
        if dtype is None or not 3 <= dims[0] <= 7 or any(d != 1 for d in dims[4 : dims[0] + 1]):
            return None
        nx, ny, nz = dims[1:4]
        offset = int(struct.unpack(endian + "f", header[108:112])[0])
        handle.read(max(0, offset - 348))
        count = nx * ny * nz
        data = np.frombuffer(handle.read(count * int(dtype[1])), dtype=endian + dtype)
    if data.size != count:
        return None
    return ~np.isfinite(data).reshape(nz, ny, nx)


def _repair_non_finite(hu: np.ndarray, label: str) -> tuple[str, ...]:
    """Set a few NaN / ±inf voxels to -1024 HU (air) in place and say so; refuse many.

    Raises:
        InvalidSeriesError: reason ``non_finite`` when more than 1 % of the voxels are.
    """
    if np.issubdtype(hu.dtype, np.integer):
        return ()
    bad = ~np.isfinite(hu)
    n_bad = int(np.count_nonzero(bad))
    if n_bad == 0:
        return ()
    if n_bad > MAX_NON_FINITE_FRACTION * hu.size:
        raise InvalidSeriesError(
            f"{label}: {n_bad:,} of {hu.size:,} voxels are NaN or infinite (more than "
            f"{MAX_NON_FINITE_FRACTION:.0%}); the file was written from a failed computation "
            "— export the volume again",
            "non_finite",
        )
    hu[bad] = -1024.0
    return (f"{n_bad} NaN / infinite voxel(s) set to -1024 HU (air)",)


def _as_3d_scalar(image, label: str):
    import SimpleITK as sitk

    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InvalidSeriesError(
            f"{label}: {image.GetNumberOfComponentsPerPixel()} components per voxel (colour or "
            "vector image); a CT volume has one",
            "not_a_volume",
        )
    size = image.GetSize()
    if len(size) == 4 and size[3] == 1:
        image = image[:, :, :, 0]
        size = image.GetSize()
    if len(size) != 3 or min(size) < 2 or size[2] < MIN_SLICES:
        raise InvalidSeriesError(
            f"{label}: size {size} is not a 3-D volume of at least {MIN_SLICES} slices",
            "not_a_volume",
        )
    return sitk.Cast(image, image.GetPixelID())


def _check_pixel_type(image, label: str) -> None:
    import SimpleITK as sitk

    if image.GetPixelID() in (sitk.sitkUInt8, sitk.sitkInt8):
        raise InvalidSeriesError(
            f"{label}: 8-bit voxels ({image.GetPixelIDTypeAsString()}) cannot hold Hounsfield "
            "units (-1024..3071); this is display-scaled data — ingest the original CT in HU",
            "not_hu",
        )
