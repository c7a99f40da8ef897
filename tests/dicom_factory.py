"""Small synthetic CT series for tests, written with ctae's DICOM writer (and pydicom for odd
cases): phantoms, identifying headers, truncated and compressed files."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pydicom
from pydicom.uid import RLELossless

from ctae_core.io.dicom_writer import SeriesHeaderSpec, write_series
from ctae_core.phantoms import torso

IDENTIFYING = {
    "patient_name": "Doeberg^Johnathan^Quincy",
    "patient_id": "PID-99887766",
    "patient_birth_date": "19450317",
    "accession_number": "ACC5566778899",
    "institution_name": "Saint Examplia Hospital",
    "institution_address": "42 Privacy Lane, Springfieldshire",
    "referring_physician_name": "Whoever^Referring^Doctor",
    "study_description": "CT chest for Johnathan Doeberg",
    "series_description": "Doeberg private protocol",
}
"""Patient-identifying values; none of them may reach the catalog or the store."""

IDENTIFYING_EXTRA = {
    "OtherPatientIDs": "OPID-123454321",
    "StationName": "STATION-DOEBERG",
    "OperatorsName": "Operatora^Olga",
    "PerformingPhysicianName": "Performa^Paula",
    "InstitutionalDepartmentName": "Dept of Examplia Radiology",
    "ImageComments": "patient Doeberg moved during scan",
    "PatientAddress": "7 Secret Street, Hiddenville",
    "PatientTelephoneNumbers": "555-0199-321",
}


def phantom(shape: tuple[int, int, int] = (24, 32, 32), seed: int = 7) -> np.ndarray:
    """int16 HU (Z, Y, X) torso (``ctae_core.phantoms.torso``) with 4 HU of noise."""
    return torso(shape, np.random.default_rng(seed), noise_sd_hu=4.0)


def write_phantom(out_dir: Path, hu: np.ndarray | None = None, **kwargs) -> list[Path]:
    """A phantom series at 2.5 × 0.8 × 0.8 mm unless ``spacing_zyx_mm`` is given."""
    spacing = kwargs.pop("spacing_zyx_mm", (2.5, 0.8, 0.8))
    return write_series(phantom() if hu is None else hu, spacing, out_dir, **kwargs)


def identifying_header(**overrides) -> SeriesHeaderSpec:
    """A CT header full of identifying values (``IDENTIFYING`` and ``IDENTIFYING_EXTRA``)."""
    return SeriesHeaderSpec(**IDENTIFYING, extra=dict(IDENTIFYING_EXTRA), **overrides)


def truncate(path: Path, keep_fraction: float = 0.6) -> None:
    """Cut a file short, as an interrupted copy would."""
    size = path.stat().st_size
    with open(path, "r+b") as handle:
        handle.truncate(int(size * keep_fraction))


def compress_rle(paths: list[Path]) -> None:
    """Re-encode each file with RLE Lossless (pydicom's own encoder)."""
    for path in paths:
        ds = pydicom.dcmread(path)
        ds.compress(RLELossless)
        ds.save_as(path, enforce_file_format=True)


def write_junk(folder: Path) -> None:
    """Files a DICOM folder often holds besides images: a DICOMDIR, notes, a thumbnail."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "DICOMDIR").write_bytes(b"\0" * 128 + b"DICM" + b"\0" * 64)
    (folder / "notes.txt").write_text("scanned on Tuesday\n")
    (folder / "thumb.png").write_bytes(os.urandom(300))
