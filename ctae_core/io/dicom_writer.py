"""Write an HU volume as a DICOM series (one CT Image Storage file per slice).

Used by the demo cohort and by the tests to build realistic, odd and identifying series. The
shared header is built once; each slice only changes its UIDs, position, number and pixels,
so writing is dominated by the file system (a 64-slice 128² series takes ~30 ms).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filewriter import dcmwrite
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    CTImageStorage,
    ExplicitVRLittleEndian,
    MRImageStorage,
    SecondaryCaptureImageStorage,
    generate_uid,
)

IDENTITY_DIRECTION = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
_SOP_CLASS_BY_MODALITY = {"CT": CTImageStorage, "MR": MRImageStorage}


@dataclass(frozen=True)
class SeriesHeaderSpec:
    """Header facts of one written series; UIDs are generated when left ``None``.

    Patient facts default to empty values; tests fill them to check de-identification.
    ``extra`` sets further DICOM keywords (e.g. ``{"ConvolutionKernel": ["B30f", "3"]}``,
    ``{"ImageType": ["DERIVED", "SECONDARY", "LOCALIZER"]}``) or private tags given as
    ``{(0x0019, 0x1010): ("LO", "value")}``; it is applied last and may override anything.
    """

    series_uid: str | None = None
    study_uid: str | None = None
    frame_of_reference_uid: str | None = None
    modality: str = "CT"
    manufacturer: str = "CTAE"
    model: str = "Phantom"
    kernel: str = "STANDARD"
    slice_thickness_mm: float | None = None  # defaults to the z spacing
    gantry_tilt_deg: float = 0.0
    series_number: int = 1
    image_type: tuple[str, ...] = ("ORIGINAL", "PRIMARY", "AXIAL")
    patient_name: str = ""
    patient_id: str = ""
    patient_birth_date: str = ""
    patient_sex: str = ""
    accession_number: str = ""
    institution_name: str = ""
    institution_address: str = ""
    referring_physician_name: str = ""
    study_description: str = ""
    series_description: str = ""
    study_date: str = "20240101"
    study_time: str = "120000"
    extra: dict[Any, Any] = field(default_factory=dict)


def derived_uid(*sources: str) -> str:
    """A DICOM UID derived from ``sources``: the same sources give the same UID."""
    return generate_uid(entropy_srcs=list(sources))


def write_series(
    hu: np.ndarray,
    spacing_zyx_mm: Sequence[float],
    out_dir: Path | str,
    *,
    header: SeriesHeaderSpec | None = None,
    origin_xyz_mm: Sequence[float] = (0.0, 0.0, 0.0),
    direction: Sequence[float] = IDENTITY_DIRECTION,
    rescale_slope: float = 1.0,
    rescale_intercept: float = -1024.0,
    reverse_order: bool = False,
    file_suffix: str = ".dcm",
    shuffle_names: bool = False,
    seed: int = 0,
) -> list[Path]:
    """Write ``hu`` as one DICOM file per z-plane, readable by SimpleITK, pydicom and dcm2niix.

    Args:
        hu: Volume of shape (Z, Y, X) in Hounsfield units; plane k becomes slice k.
        spacing_zyx_mm: Slice step and pixel spacing (row, column) in mm.
        out_dir: Folder to write into (created); existing files of the same names are replaced.
        header: Series facts; a default CT header with fresh UIDs when ``None``.
        origin_xyz_mm: Patient (LPS) position of voxel (0, 0, 0), in mm.
        direction: 3×3 direction cosines, row-major as SimpleITK reports them: column i is the
            patient direction of array axis (x, y, z)[i]. Slices step along the third column.
        rescale_slope: (0028,1053); stored value = round((HU - intercept) / slope).
        rescale_intercept: (0028,1052).
        reverse_order: Number instances from the last plane to the first (InstanceNumber 1 is
            the plane with the highest index); the geometry is unchanged.
        file_suffix: File name suffix, ``""`` for DICOM files without an extension.
        shuffle_names: Give files names whose sort order is unrelated to slice order.
        seed: Seed for ``shuffle_names``.

    Returns:
        Paths of the written files, in plane order (plane 0 first).

    Raises:
        ValueError: ``hu`` is not 3-D or its stored values do not fit in int16.
    """
    header = header or SeriesHeaderSpec()
    stored = _stored_values(hu, rescale_slope, rescale_intercept)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    series_uid = header.series_uid or generate_uid()
    base = _base_dataset(header, series_uid, stored.shape, spacing_zyx_mm, direction)
    base.RescaleSlope = _ds_number(rescale_slope)
    base.RescaleIntercept = _ds_number(rescale_intercept)
    step = _slice_step(spacing_zyx_mm[0], direction, header.gantry_tilt_deg)
    n_planes = stored.shape[0]
    names = list(range(n_planes))
    if shuffle_names:
        random.Random(seed).shuffle(names)
    paths: list[Path] = []
    for k in range(n_planes):
        instance = n_planes - k if reverse_order else k + 1
        position = [float(origin_xyz_mm[i]) + k * step[i] for i in range(3)]
        sop_uid = generate_uid(entropy_srcs=[series_uid, str(k)])
        base.file_meta.MediaStorageSOPInstanceUID = sop_uid
        base.SOPInstanceUID = sop_uid
        base.InstanceNumber = instance
        base.ImagePositionPatient = [_ds_number(v) for v in position]
        base.SliceLocation = _ds_number(position[2])
        base.PixelData = stored[k].tobytes()
        path = out_dir / f"IM{names[k]:05d}{file_suffix}"
        dcmwrite(path, base, enforce_file_format=True)
        paths.append(path)
    return paths


def _stored_values(hu: np.ndarray, slope: float, intercept: float) -> np.ndarray:
    """int16 stored values, little-endian, shape (Z, Y, X)."""
    if hu.ndim != 3:
        raise ValueError(f"hu must be a (Z, Y, X) volume, not an array of shape {hu.shape}")
    if slope == 0:
        raise ValueError("rescale_slope must be non-zero")
    values = np.rint((np.asarray(hu, dtype=np.float64) - intercept) / slope)
    if values.size and (values.min() < -32768 or values.max() > 32767):
        raise ValueError(
            f"stored values {values.min():.0f}..{values.max():.0f} do not fit in int16 with "
            f"slope={slope}, intercept={intercept}; choose another slope or intercept"
        )
    return np.ascontiguousarray(values.astype("<i2"))


def _slice_step(dz: float, direction: Sequence[float], tilt_deg: float) -> list[float]:
    """Position change from one slice to the next: along the normal, or the table axis if tilted."""
    normal = [float(direction[2]), float(direction[5]), float(direction[8])]
    if tilt_deg:
        # A tilted gantry leaves the table axis (the untilted normal) as the step direction,
        # while the image plane rotates; slices then are dz / cos(tilt) apart along the table.
        return [dz / math.cos(math.radians(tilt_deg)) * n for n in normal]
    return [dz * n for n in normal]


def _orientation(direction: Sequence[float], tilt_deg: float) -> list[float]:
    """ImageOrientationPatient: row (x) and column (y) directions, the column rotated by tilt."""
    row = [float(direction[0]), float(direction[3]), float(direction[6])]
    col = [float(direction[1]), float(direction[4]), float(direction[7])]
    if tilt_deg:
        normal = [float(direction[2]), float(direction[5]), float(direction[8])]
        c, s = math.cos(math.radians(tilt_deg)), math.sin(math.radians(tilt_deg))
        col = [c * col[i] + s * normal[i] for i in range(3)]
    return [_ds_number(v) for v in row + col]


def _base_dataset(
    header: SeriesHeaderSpec,
    series_uid: str,
    shape: tuple[int, ...],
    spacing_zyx_mm: Sequence[float],
    direction: Sequence[float],
) -> Dataset:
    """The header every slice shares; slices change only UIDs, position, number and pixels."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = list(header.image_type)
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = header.study_date
    ds.StudyTime = ds.SeriesTime = ds.AcquisitionTime = ds.ContentTime = header.study_time
    ds.Modality = header.modality
    ds.Manufacturer = header.manufacturer
    ds.ManufacturerModelName = header.model
    ds.ConvolutionKernel = header.kernel
    _set_patient_facts(ds, header)
    ds.StudyInstanceUID = header.study_uid or generate_uid(entropy_srcs=[series_uid, "study"])
    ds.SeriesInstanceUID = series_uid
    ds.FrameOfReferenceUID = header.frame_of_reference_uid or generate_uid(
        entropy_srcs=[series_uid, "frame"]
    )
    ds.StudyID = "1"
    ds.SeriesNumber = header.series_number
    ds.AcquisitionNumber = 1
    ds.PositionReferenceIndicator = ""
    ds.SliceThickness = _ds_number(header.slice_thickness_mm or spacing_zyx_mm[0])
    ds.KVP = 120
    ds.GantryDetectorTilt = _ds_number(header.gantry_tilt_deg)
    ds.PatientPosition = "HFS"
    ds.ImageOrientationPatient = _orientation(direction, header.gantry_tilt_deg)
    ds.PixelSpacing = [_ds_number(spacing_zyx_mm[1]), _ds_number(spacing_zyx_mm[2])]
    _set_pixel_module(ds, shape)
    _apply_extra(ds, header.extra)
    sop_class = ds.get("SOPClassUID") or _SOP_CLASS_BY_MODALITY.get(
        header.modality, SecondaryCaptureImageStorage
    )
    ds.SOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    return ds


def _set_patient_facts(ds: Dataset, header: SeriesHeaderSpec) -> None:
    """Patient, study and institution elements (type 2: present, possibly empty)."""
    ds.PatientName = header.patient_name
    ds.PatientID = header.patient_id
    ds.PatientBirthDate = header.patient_birth_date
    ds.PatientSex = header.patient_sex
    ds.AccessionNumber = header.accession_number
    ds.ReferringPhysicianName = header.referring_physician_name
    ds.StudyDescription = header.study_description
    ds.SeriesDescription = header.series_description
    if header.institution_name:
        ds.InstitutionName = header.institution_name
    if header.institution_address:
        ds.InstitutionAddress = header.institution_address


def _set_pixel_module(ds: Dataset, shape: tuple[int, ...]) -> None:
    """Image pixel module for signed 16-bit monochrome slices."""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = int(shape[1])
    ds.Columns = int(shape[2])
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.WindowCenter = 40
    ds.WindowWidth = 400


def _apply_extra(ds: Dataset, extra: dict[Any, Any]) -> None:
    """Set further keywords or private (group, element) tags; unknown keywords are an error."""
    for key, value in extra.items():
        if isinstance(key, str):
            if tag_for_keyword(key) is None:
                raise ValueError(
                    f"header.extra key {key!r} is not a DICOM keyword; use a keyword from the "
                    "standard dictionary or a (group, element) tuple with (VR, value)"
                )
            if value is None:
                if key in ds:
                    delattr(ds, key)
                continue
            setattr(ds, key, value)
        else:
            vr, tag_value = value
            ds.add_new(tuple(key), vr, tag_value)


def _ds_number(value: float) -> str:
    """A decimal string of at most 16 characters (DICOM DS), without float noise."""
    text = f"{float(value):.10g}"
    if len(text) > 16:
        text = f"{float(value):.8e}"
    return "0" if text == "-0" else text
