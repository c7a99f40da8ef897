"""Read the header of one DICOM file as discovery needs it: the ``SLICE_TAGS`` and where the
PixelData begins, through pydicom's public API only.

The common case (a Part 10 file, little-endian, ``SLICE_TAGS`` before PixelData) is walked here
without building elements for the tags that are skipped (pydicom parses every nested sequence),
which halves discovery time; everything else goes to ``pydicom.dcmread``.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import BinaryIO

import pydicom
from pydicom.charset import convert_encodings, default_encoding
from pydicom.dataelem import RawDataElement, convert_raw_data_element, empty_value_for_VR
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.errors import BytesLengthException
from pydicom.tag import BaseTag, Tag
from pydicom.uid import AllTransferSyntaxes, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pydicom.valuerep import EXPLICIT_VR_LENGTH_32, VR

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
MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"
DAMAGED_VALUE_ERRORS: tuple[type[Exception], ...] = (
    TypeError, ValueError, KeyError, AttributeError, IndexError, OverflowError,
    NotImplementedError, BytesLengthException,
)  # fmt: skip
"""What reading a damaged header value raises (pydicom converts values lazily, on use)."""
DIRECTORY_NAMES = ("DICOMDIR", "DIRFILE")

_WANTED = frozenset(int(Tag(keyword)) for keyword in SLICE_TAGS)
_PIXEL_TAGS = {0x7FE00010, 0x7FE00009, 0x7FE00008}  # where stop_before_pixels stops
_VRS = {vr.value.encode("ascii"): (vr.value, vr.value in EXPLICIT_VR_LENGTH_32) for vr in VR}
"""Each VR's two bytes as written: (the VR, whether its length takes 4 bytes after 2 reserved)."""
_EXPLICIT = struct.Struct("<HH2sH")  # group, element, VR, 16-bit length
_IMPLICIT = struct.Struct("<HHL")  # group, element, 32-bit length
_U32 = struct.Struct("<L")
_ITEM = struct.Struct("<LL")  # tag as one little-endian word (element << 16 | group), length


@dataclass(frozen=True)
class SliceHeader:
    """A DICOM file's ``SLICE_TAGS`` as read by discovery, and where its PixelData begins.

    Handing these to the worker spares it a second parse of every header.
    """

    dataset: Dataset
    pixel_offset: int | None


@dataclass(frozen=True)
class HeaderRefusal:
    """Why a file is not a DICOM image: a reason code and, for broken headers, what broke."""

    reason: str  # not_dicom | dicom_directory | not_an_image | unreadable
    detail: str = ""


def read_slice_header(handle: BinaryIO, name: str) -> SliceHeader | HeaderRefusal:
    """The header of the DICOM image file open as ``handle`` (named ``name``), or a refusal."""
    if name.upper() in DIRECTORY_NAMES:
        return HeaderRefusal("dicom_directory")
    try:
        start = handle.read(132)
        has_preamble = start[128:132] == b"DICM"
        if not has_preamble and start[:2] not in (b"\x08\x00", b"\x02\x00"):
            return HeaderRefusal("not_dicom")
        fast = _read_header_fast(handle, start) if has_preamble else None
        if fast is not None:
            dataset, offset = fast
            at_pixels = offset is not None
        else:
            handle.seek(0)
            dataset = pydicom.dcmread(
                handle, stop_before_pixels=True, specific_tags=SLICE_TAGS, force=not has_preamble
            )
            offset = handle.tell()
            at_pixels = handle.read(4) == b"\xe0\x7f\x10\x00"  # (7FE0,0010) PixelData
        sop_class = str(dataset.get("SOPClassUID", ""))
        has_rows = "Rows" in dataset
        implicit, little = dataset.original_encoding
    except Exception as err:  # a broken header in any of pydicom's ways is one refused file
        return HeaderRefusal("unreadable", f"{type(err).__name__}: {err}"[:200])
    if sop_class == MEDIA_STORAGE_DIRECTORY:
        return HeaderRefusal("dicom_directory")
    if not has_rows:  # no pixel module: a report, key object or directory record
        return HeaderRefusal("not_an_image")
    if at_pixels and little and implicit is not None:
        cut = _pixels_cut_short(handle, offset, implicit)
        if cut:  # decoders can spend many seconds on a cut JPEG 2000 stream
            return HeaderRefusal("unreadable", f"truncated: {cut}; copy the file again")
    return SliceHeader(dataset, offset if at_pixels else None)


def _pixels_cut_short(handle: BinaryIO, offset: int, implicit: bool) -> str:
    """What is missing when the PixelData element at ``offset`` ends past the end of the
    file ('' when it is complete): its value, or a fragment of encapsulated frames."""
    size = os.fstat(handle.fileno()).st_size
    handle.seek(offset)
    head = handle.read(12)
    if len(head) < 8:
        return "the file ends inside the PixelData header"
    explicit = not implicit
    length = _U32.unpack_from(head, 8 if explicit else 4)[0]
    pos = offset + (12 if explicit else 8)
    if length != 0xFFFFFFFF:
        return (
            ""
            if pos + length <= size
            else f"PixelData needs {pos + length:,} bytes, the file has {size:,}"
        )
    while pos + 8 <= size:  # encapsulated: items up to the sequence delimiter
        handle.seek(pos)
        tag, item_length = _ITEM.unpack(handle.read(8))
        if tag == 0xE0DDFFFE:
            return ""
        if tag != 0xE000FFFE:
            return ""  # not item structure: left to the decoder to judge
        pos += 8 + item_length
    return f"the compressed frames end at byte {size:,}, before their last fragment"


def _read_header_fast(handle: BinaryIO, start: bytes) -> tuple[FileDataset, int | None] | None:
    """``dcmread(stop_before_pixels=True, specific_tags=SLICE_TAGS)`` for the plain cases.

    Returns the same dataset and where PixelData starts (None without it); or None whenever
    pydicom is needed (other transfer syntaxes, unusual meta groups, command sets, odd
    encodings, truncation, wanted sequences).
    """
    file_meta, ds_start = _read_file_meta_fast(handle)
    if file_meta is None:
        return None
    syntax = file_meta.get("TransferSyntaxUID")
    if syntax == ImplicitVRLittleEndian:
        implicit = True
    elif syntax == ExplicitVRLittleEndian or (
        syntax in AllTransferSyntaxes
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
    encoding: str | list[str] = default_encoding
    if 0x00080005 in elements:
        charset = convert_raw_data_element(elements[BaseTag(0x00080005)]).value
        encoding = convert_encodings(charset)
    full = FileDataset(handle, elements, start[:128], file_meta, implicit, True)
    full.set_original_encoding(implicit, True, encoding)
    return full, offset


def _read_file_meta_fast(handle: BinaryIO) -> tuple[FileMetaDataset | None, int]:
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
    file_meta = FileMetaDataset(elements)
    file_meta.set_original_encoding(False, True, default_encoding)
    return file_meta, 132 + pos


class _Walker:
    """Element walk over a data set's bytes (little endian), skipping unwanted values."""

    def __init__(self, data: bytes, implicit: bool) -> None:
        self.data, self.implicit = data, implicit

    def element(self, pos: int) -> tuple[int, str | None, int, int] | None:
        """(tag, VR, length, value position) of the element at ``pos``; None if odd/short."""
        data = self.data
        if len(data) - pos < 8:
            return None
        if self.implicit:
            group, elem, length = _IMPLICIT.unpack_from(data, pos)
            return group << 16 | elem, None, length, pos + 8
        group, elem, encoded_vr, length = _EXPLICIT.unpack_from(data, pos)
        known = _VRS.get(encoded_vr)
        if known is None:
            return None
        vr, long_length = known
        if not long_length:
            return group << 16 | elem, vr, length, pos + 8
        if pos + 12 > len(data):
            return None
        return group << 16 | elem, vr, _U32.unpack_from(data, pos + 8)[0], pos + 12

    def walk_top(self, base: int) -> tuple[dict, int | None] | None:
        """The wanted top-level elements and PixelData's file offset; None: ask pydicom."""
        elements: dict = {}
        data, implicit = self.data, self.implicit
        pos, size = 0, len(data)
        # the element parse of ``element`` inlined: this loop runs ~150 times a file
        while size - pos >= 8:
            if implicit:
                group, elem, length = _IMPLICIT.unpack_from(data, pos)
                vr, value_pos = None, pos + 8
            else:
                group, elem, encoded_vr, length = _EXPLICIT.unpack_from(data, pos)
                known = _VRS.get(encoded_vr)
                if known is None:
                    return None
                vr, long_length = known
                value_pos = pos + 8
                if long_length:
                    if pos + 12 > size:
                        return None
                    length, value_pos = _U32.unpack_from(data, value_pos)[0], pos + 12
            tag = group << 16 | elem
            if tag in _PIXEL_TAGS:
                return elements, (base + pos if tag == 0x7FE00010 else None)
            if group == 0xFFFE:
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
                value = data[value_pos : value_pos + length] if length else None
                if not length:
                    value = empty_value_for_VR(vr, raw=True)
                elements[BaseTag(tag)] = RawDataElement(
                    BaseTag(tag), vr, length, value, base + value_pos, implicit, True
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
        while pos < len(self.data):
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
        return None
