"""Find ingestible inputs under a folder: DICOM series (grouped by SeriesInstanceUID) and
NIfTI / MHA / NRRD volume files.

Discovery reads only file headers. It skips DICOMDIR / directory objects and non-DICOM files,
and describes each input as a picklable ``SeriesSource`` that a worker process can read.
"""

from __future__ import annotations

import hashlib
import logging
import os
import warnings
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
import pydicom.config
from pydicom.errors import InvalidDicomError

logger = logging.getLogger(__name__)

VOLUME_SUFFIXES = {
    ".nii": "nifti",
    ".nii.gz": "nifti",
    ".mha": "mha",
    ".mhd": "mha",
    ".nrrd": "nrrd",
    ".nhdr": "nrrd",
}
MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"
SLICE_TAGS = [
    "SpecificCharacterSet", "SOPClassUID", "StudyInstanceUID", "SeriesInstanceUID",
    "SeriesNumber", "Modality", "ImageType", "Manufacturer", "ManufacturerModelName",
    "ConvolutionKernel", "SliceThickness", "GantryDetectorTilt", "InstanceNumber",
    "ImagePositionPatient", "ImageOrientationPatient", "SamplesPerPixel",
    "PhotometricInterpretation", "NumberOfFrames", "Rows", "Columns", "PixelSpacing",
    "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation", "PlanarConfiguration",
    "RescaleIntercept", "RescaleSlope",
]  # fmt: skip
"""The elements discovery and the reader use: grouping, geometry, HU and device facts. Patient
facts are never read, and skipping the rest (private sequences) halves the parsing time."""


@dataclass(frozen=True)
class SliceHeader:
    """A DICOM file's ``SLICE_TAGS`` as read by discovery, and where its PixelData begins.

    Handing these to the worker spares it a second parse of every header.
    """

    dataset: pydicom.Dataset
    pixel_offset: int | None


@dataclass(frozen=True)
class SeriesSource:
    """One input to ingest: a DICOM series or a volume file.

    Attributes:
        kind: ``dicom``, ``nifti``, ``mha`` or ``nrrd``.
        source_root: The folder given on the command line, absolute.
        source_path: Series folder (DICOM) or file, relative to ``source_root``.
        series_uid: SeriesInstanceUID, or None (volume files, DICOM with an empty UID).
        files: Absolute paths of the files that make up the input.
        headers: For DICOM, each file's header in ``files`` order (empty when not read).
        fingerprint: Hash of the files' names, sizes and modification times.
        group_key: What grouped the files (the UID, or the fallback key when it is empty).
    """

    kind: str
    source_root: str
    source_path: str
    series_uid: str | None
    files: tuple[str, ...]
    fingerprint: str
    group_key: str = ""
    headers: tuple[SliceHeader, ...] = field(default=(), compare=False, repr=False)

    @property
    def source_key(self) -> str:
        """Stable hash of root, path and series: the identity of this input across runs."""
        text = "\x1f".join([self.source_root, self.source_path, self.group_key])
        return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class ScanFacts:
    """What reading an input learned besides the voxels: device and geometry facts, repairs.

    No patient facts: this object is stored in the catalog.
    """

    manufacturer: str | None = None
    model: str | None = None
    kernel: str | None = None
    slice_thickness_mm: float | None = None
    orig_size_zyx: tuple[int, int, int] = (0, 0, 0)
    orig_spacing_zyx_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    orig_direction: tuple[float, ...] = ()
    gantry_tilt_deg: float = 0.0
    missing_slices: int = 0
    duplicate_slices: int = 0
    reversed_slices: bool = False
    warnings: tuple[str, ...] = field(default_factory=tuple)


@dataclass
class Discovery:
    """The inputs found under the roots, plus counts of the files that were passed over."""

    sources: list[SeriesSource] = field(default_factory=list)
    skipped_files: dict[str, int] = field(default_factory=lambda: defaultdict(int))


def discover_sources(roots: list[Path]) -> Discovery:
    """Walk each root recursively and group its files into ingestible inputs.

    Raises:
        FileNotFoundError: a root does not exist.
    """
    found = Discovery()
    with quiet_pydicom():  # header values are judged by the reader, not logged here
        for root in roots:
            _discover_root(Path(root).resolve(), found)
    found.sources.sort(key=lambda s: (s.source_root, s.source_path, s.group_key))
    return found


def _discover_root(root: Path, found: Discovery) -> None:
    if not root.exists():
        raise FileNotFoundError(f"{root}: source folder does not exist; check the path")
    if root.is_file():
        _discover_file_root(root, found)
        return
    groups: dict[str, list[tuple[Path, SliceHeader]]] = defaultdict(list)
    for path in _walk_files(root):
        kind = volume_kind(path)
        if kind is not None:
            found.sources.append(_volume_source(root, path, kind))
            continue
        header, why = _read_header(path)
        if header is None:
            found.skipped_files[why] += 1
            continue
        groups[_group_key(path, header)].append((path, header))
    found.sources.extend(_dicom_source(root, key, members) for key, members in groups.items())


def volume_kind(path: Path) -> str | None:
    """``nifti`` / ``mha`` / ``nrrd`` from the file name, or None for anything else."""
    name = path.name.lower()
    for suffix, kind in VOLUME_SUFFIXES.items():
        if name.endswith(suffix):
            return kind
    return None


def fingerprint_files(paths: list[Path], root: Path) -> str:
    """Hash of relative names, sizes and mtimes: changes when any file changes."""
    digest = hashlib.sha256()
    for path in sorted(paths):
        stat = path.stat()
        digest.update(f"{path.relative_to(root)}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


@contextmanager
def quiet_pydicom() -> Iterator[None]:
    """Read without pydicom's per-value validation warnings; the readers judge values."""
    previous = pydicom.config.settings.reading_validation_mode
    pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        pydicom.config.settings.reading_validation_mode = previous


def _discover_file_root(path: Path, found: Discovery) -> None:
    kind = volume_kind(path)
    if kind is None:
        header, why = _read_header(path)
        if header is None:
            found.skipped_files[why] += 1
            return
        found.sources.append(_dicom_source(path.parent, _group_key(path, header), [(path, header)]))
        return
    found.sources.append(_volume_source(path.parent, path, kind))


def _walk_files(root: Path):
    for folder, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith("."):
                yield Path(folder) / name


def _read_header(path: Path) -> tuple[SliceHeader | None, str]:
    """The header of a DICOM image file and its PixelData offset, or (None, why it is skipped)."""
    if path.name.upper() in ("DICOMDIR", "DIRFILE"):
        return None, "dicom_directory"
    try:
        with open(path, "rb") as handle:
            start = handle.read(132)
            has_preamble = start[128:132] == b"DICM"
            if not has_preamble and start[:2] not in (b"\x08\x00", b"\x02\x00"):
                return None, "not_dicom"
            handle.seek(0)
            dataset = pydicom.dcmread(
                handle, stop_before_pixels=True, specific_tags=SLICE_TAGS, force=not has_preamble
            )
            offset = handle.tell()
            at_pixels = handle.read(4) == b"\xe0\x7f\x10\x00"  # (7FE0,0010) PixelData
    except (InvalidDicomError, EOFError, OSError, ValueError, KeyError, TypeError):
        return None, "unreadable"
    if str(dataset.get("SOPClassUID", "")) == MEDIA_STORAGE_DIRECTORY:
        return None, "dicom_directory"
    if "Rows" not in dataset:  # no pixel module: a report, key object or directory record
        return None, "not_an_image"
    return SliceHeader(dataset, offset if at_pixels else None), ""


def _group_key(path: Path, slice_header: SliceHeader) -> str:
    header = slice_header.dataset
    uid = str(header.get("SeriesInstanceUID", "") or "").strip()
    if uid:
        return uid
    fallback = [
        str(path.parent),
        str(header.get("StudyInstanceUID", "") or ""),
        str(header.get("SeriesNumber", "") or ""),
        str(header.get("Modality", "") or ""),
        f"{header.get('Rows', '')}x{header.get('Columns', '')}",
    ]
    return "nouid:" + hashlib.sha256("|".join(fallback).encode()).hexdigest()[:16]


def _dicom_source(root: Path, key: str, members: list[tuple[Path, SliceHeader]]) -> SeriesSource:
    members = sorted(members, key=lambda member: member[0])
    paths = [path for path, _ in members]
    folder = Path(os.path.commonpath([p.parent for p in paths]))
    return SeriesSource(
        kind="dicom",
        source_root=str(root),
        source_path=str(folder.relative_to(root)),
        series_uid=None if key.startswith("nouid:") else key,
        files=tuple(str(p) for p in paths),
        fingerprint=fingerprint_files(paths, root),
        group_key=key,
        headers=tuple(header for _, header in members),
    )


def _volume_source(root: Path, path: Path, kind: str) -> SeriesSource:
    relative = str(path.relative_to(root))
    return SeriesSource(
        kind=kind,
        source_root=str(root),
        source_path=relative,
        series_uid=None,
        files=(str(path),),
        fingerprint=fingerprint_files([path], root),
        group_key=relative,
    )
