"""What a DICOM series must be to become a CT volume: CT, acquired axial images, enough slices.

Each check raises ``InvalidSeriesError`` with a reason code and a message that names the input.
"""

from __future__ import annotations

import pydicom
from pydicom.uid import UID

from ctae_core.errors import InvalidSeriesError

MIN_SLICES = 8
"""Fewer distinct slices than this make no volume worth scoring (3 mm of 1 mm slices...)."""

CT_SOP_CLASSES = {"1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.2.1"}
SECONDARY_CAPTURE_PREFIX = "1.2.840.10008.5.1.4.1.1.7"
LOCALIZER_TYPES = {"LOCALIZER", "SCOUT", "SURVIEW", "TOPOGRAM", "SCANOGRAM"}


def check_modality(ds: pydicom.Dataset, label: str, warnings: list[str]) -> None:
    """CT by (0008,0060) Modality, or by CT SOP Class when Modality is missing (noted)."""
    modality = str(ds.get("Modality", "") or "").strip().upper()
    sop_class = str(ds.get("SOPClassUID", ""))
    if not modality:
        if sop_class in CT_SOP_CLASSES:
            warnings.append("Modality missing; CT by its SOP Class")
            return
        raise InvalidSeriesError(
            f"{label}: Modality (0008,0060) is missing and the SOP Class is "
            f"{UID(sop_class).name or sop_class}, not CT; only CT series are ingested",
            "not_ct",
        )
    if modality != "CT":
        raise InvalidSeriesError(
            f"{label}: Modality is {modality}, not CT; only CT series are ingested", "not_ct"
        )


def check_image_kind(ds: pydicom.Dataset, label: str) -> None:
    """Acquired grayscale single-frame images: no Secondary Capture, RGB or multi-frame."""
    sop_class = str(ds.get("SOPClassUID", ""))
    if sop_class.startswith(SECONDARY_CAPTURE_PREFIX):
        raise InvalidSeriesError(
            f"{label}: Secondary Capture images (screenshots, reports), not an acquired CT volume",
            "secondary_capture",
        )
    photometric = str(ds.get("PhotometricInterpretation", "")).upper()
    if int(ds.get("SamplesPerPixel", 1)) != 1 or not photometric.startswith("MONOCHROME"):
        raise InvalidSeriesError(
            f"{label}: {photometric or 'non-monochrome'} images, not grayscale CT slices",
            "not_grayscale",
        )
    if int(ds.get("NumberOfFrames", 1) or 1) > 1:
        raise InvalidSeriesError(
            f"{label}: a multi-frame (enhanced) CT object; convert it to single-frame slices "
            "first (e.g. with dcm2niix, then ingest the NIfTI)",
            "multiframe",
        )


def is_localizer(ds: pydicom.Dataset) -> bool:
    """(0008,0008) ImageType marks a scout / localizer / topogram."""
    image_type = {str(v).upper() for v in (ds.get("ImageType") or [])}
    return bool(image_type & LOCALIZER_TYPES)


def check_slice_count(n_slices: int, label: str) -> None:
    """At least ``MIN_SLICES`` distinct slices (reasons ``single_slice``, ``too_few_slices``)."""
    if n_slices == 1:
        raise InvalidSeriesError(
            f"{label}: a single slice is not a volume; nothing to ingest", "single_slice"
        )
    if n_slices < MIN_SLICES:
        raise InvalidSeriesError(
            f"{label}: only {n_slices} distinct slices; a volume needs at least {MIN_SLICES}",
            "too_few_slices",
        )
