"""Find ingestible inputs under a folder: DICOM series (grouped by SeriesInstanceUID) and
NIfTI / MHA / NRRD volume files.

Discovery reads only file headers. It skips DICOMDIR / directory objects and non-DICOM files,
and describes each input as a picklable ``SeriesSource`` that a worker process can read.
"""

from __future__ import annotations

import hashlib
import logging
import os
import struct
import warnings
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
import pydicom.config
import pydicom.filereader
from pydicom.charset import convert_encodings, default_encoding
from pydicom.dataelem import RawDataElement, convert_raw_data_element, empty_value_for_VR
from pydicom.errors import InvalidDicomError
from pydicom.filereader import ENCODED_VR
from pydicom.tag import BaseTag, Tag
from pydicom.valuerep import EXPLICIT_VR_LENGTH_32

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
HEAD_BYTES = 65536
"""Bytes read first for a header; most end (at PixelData) well before."""
_WANTED = frozenset(int(Tag(keyword)) for keyword in SLICE_TAGS)
_PIXEL_TAGS = {0x7FE00010, 0x7FE00009, 0x7FE00008}  # where stop_before_pixels stops
_TAG, _U16, _U32 = struct.Struct("<HH"), struct.Struct("<H"), struct.Struct("<L")
_ITEM = struct.Struct("<LL")  # tag as one little-endian word (element << 16 | group), length


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
            fast = _read_header_fast(handle, start) if has_preamble else None
            if fast is not None:
                dataset, offset = fast
                at_pixels = offset is not None
            else:
                handle.seek(0)
                dataset = pydicom.dcmread(
                    handle,
                    stop_before_pixels=True,
                    specific_tags=SLICE_TAGS,
                    force=not has_preamble,
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


def _read_header_fast(handle, start: bytes) -> tuple[pydicom.Dataset, int | None] | None:
    """``dcmread(stop_before_pixels=True, specific_tags=SLICE_TAGS)`` for the plain cases.

    Walks the little-endian data set after the file meta group without building elements
    for the tags it skips (pydicom parses every nested sequence). Returns the same dataset,
    and where PixelData starts (None without it); or None whenever pydicom is needed
    (other transfer syntaxes, command sets, odd encodings, truncation, wanted sequences).
    """
    file_meta, ds_start = _read_file_meta_fast(handle)
    if file_meta is None:
        handle.seek(132)
        file_meta = pydicom.filereader._read_file_meta_info(handle)
        ds_start = handle.tell()
    syntax = file_meta.get("TransferSyntaxUID")
    if syntax == pydicom.uid.ImplicitVRLittleEndian:
        implicit = True
    elif syntax == pydicom.uid.ExplicitVRLittleEndian or (
        syntax in pydicom.uid.AllTransferSyntaxes
        and syntax.is_compressed
        and syntax.is_little_endian
        and not syntax.is_deflated
    ):
        implicit = False
    else:
        return None
    handle.seek(ds_start)
    reader = _Walker(handle.read(HEAD_BYTES), implicit)
    head = reader.data[:6]
    if len(head) < 6 or head[:2] == b"\x00\x00":  # empty, or a command set: pydicom's case
        return None
    if (not (0x40 < head[4] < 0x5B and 0x40 < head[5] < 0x5B)) != implicit:
        return None
    walked = reader.walk_top(ds_start)
    if walked is None and len(reader.data) == HEAD_BYTES:  # a long header: read all of it
        reader.data += handle.read()
        walked = reader.walk_top(ds_start)
    if walked is None:
        return None
    elements, offset = walked
    dataset = pydicom.Dataset(elements)
    encoding = default_encoding
    if 0x00080005 in elements:
        charset = convert_raw_data_element(elements[BaseTag(0x00080005)]).value
        encoding = convert_encodings(charset)
    dataset.set_original_encoding(implicit, True, encoding)
    full = pydicom.dataset.FileDataset(handle, dataset, start[:128], file_meta, implicit, True)
    full.set_original_encoding(implicit, True, dataset._character_set)
    return full, offset


def _read_file_meta_fast(handle) -> tuple[pydicom.dataset.FileMetaDataset | None, int]:
    """The (0002,xxxx) group as pydicom's reader builds it, and where the data set starts;
    (None, 0) when the group is unusual (implicit VR, undefined lengths, no elements)."""
    handle.seek(132)
    walker = _Walker(handle.read(1024), implicit=False)
    elements: dict = {}
    pos = 0
    while len(walker.data) - pos >= 8 and walker.data[pos : pos + 2] == b"\x02\x00":
        parsed = walker.element(pos)
        if parsed is None:
            return None, 0
        tag, vr, length, value_pos = parsed
        if length == 0xFFFFFFFF or value_pos + length > len(walker.data):
            return None, 0
        value = walker.data[value_pos : value_pos + length] if length else None
        if not length:
            value = empty_value_for_VR(vr, raw=True)
        elements[BaseTag(tag)] = RawDataElement(
            BaseTag(tag), vr, length, value, 132 + value_pos, False, True
        )
        pos = value_pos + length
    if not elements or len(walker.data) - pos < 8:
        return None, 0
    file_meta = pydicom.dataset.FileMetaDataset(elements)
    file_meta.set_original_encoding(False, True, default_encoding)
    return file_meta, 132 + pos


class _Walker:
    """Element walk over a data set's bytes (little endian), skipping unwanted values."""

    def __init__(self, data: bytes, implicit: bool) -> None:
        self.data, self.implicit = data, implicit

    def element(self, pos: int) -> tuple[int, str | None, int, int] | None:
        """(tag, VR, length, value position) of the element at ``pos``; None if odd/short."""
        head = self.data[pos : pos + 8]
        if len(head) < 8:
            return None
        group, elem = _TAG.unpack_from(head)
        if self.implicit:
            return group << 16 | elem, None, _U32.unpack_from(head, 4)[0], pos + 8
        if head[4:6] not in ENCODED_VR:
            return None
        vr = head[4:6].decode()
        if vr in EXPLICIT_VR_LENGTH_32:
            if pos + 12 > len(self.data):
                return None
            return group << 16 | elem, vr, _U32.unpack_from(self.data, pos + 8)[0], pos + 12
        return group << 16 | elem, vr, _U16.unpack_from(head, 6)[0], pos + 8

    def walk_top(self, base: int) -> tuple[dict, int | None] | None:
        elements: dict = {}
        pos, size = 0, len(self.data)
        while size - pos >= 8:
            parsed = self.element(pos)
            if parsed is None:
                return None
            tag, vr, length, value_pos = parsed
            if tag in _PIXEL_TAGS:
                return elements, (base + pos if tag == 0x7FE00010 else None)
            if tag >> 16 == 0xFFFE:
                return None
            if length == 0xFFFFFFFF:
                if tag in _WANTED:
                    return None
                pos = self.skip_sequence(value_pos, vr)
                if pos is None:
                    return None
                continue
            if value_pos + length > size:
                return None
            if tag in _WANTED:
                value = self.data[value_pos : value_pos + length] if length else None
                if not length:
                    value = empty_value_for_VR(vr, raw=True)
                elements[BaseTag(tag)] = RawDataElement(
                    BaseTag(tag), vr, length, value, base + value_pos, self.implicit, True
                )
            pos = value_pos + length
        return (elements, None) if pos == size else None

    def skip_sequence(self, pos: int, vr: str | None) -> int | None:
        """End of an undefined-length sequence whose first item starts at ``pos``."""
        if vr not in (None, "SQ"):
            return None
        while pos + 8 <= len(self.data):
            tag, length = _ITEM.unpack_from(self.data, pos)
            pos += 8
            if tag == 0xE0DDFFFE:  # (FFFE,E0DD) sequence delimiter
                return pos
            if tag != 0xE000FFFE:  # (FFFE,E000) item
                return None
            if length != 0xFFFFFFFF:
                pos += length
                continue
            pos = self.skip_item(pos)
            if pos is None:
                return None
        return None

    def skip_item(self, pos: int) -> int | None:
        """End of an undefined-length item whose first element starts at ``pos``."""
        while True:
            if self.data[pos : pos + 4] == b"\xfe\xff\x0d\xe0":  # (FFFE,E00D) item end
                return pos + 8
            parsed = self.element(pos)
            if parsed is None:
                return None
            _, vr, length, value_pos = parsed
            if length == 0xFFFFFFFF:
                pos = self.skip_sequence(value_pos, vr)
                if pos is None:
                    return None
            else:
                pos = value_pos + length


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
