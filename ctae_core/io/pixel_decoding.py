"""Decode one DICOM slice to Hounsfield units: pydicom / numpy for native pixels, GDCM for the
compressed transfer syntaxes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pydicom
from pydicom.datadict import tag_for_keyword
from pydicom.tag import BaseTag
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian

HU_FLOOR = -1024
_LAYOUT_KEYWORDS = (
    "Rows", "Columns", "BitsAllocated", "BitsStored", "PixelRepresentation",
    "SamplesPerPixel", "RescaleSlope", "RescaleIntercept",
)  # fmt: skip


@dataclass(frozen=True)
class PixelLayout:
    """How one slice's pixels are stored and turned into HU; shared by most of a series."""

    rows: int
    columns: int
    bits_allocated: int
    bits_stored: int
    signed: bool
    samples: int
    slope: float
    intercept: float
    syntax: UID


class LayoutCache:
    """Converts each distinct set of pixel-module values once per series, not once per slice
    (pydicom's value conversion costs more than decoding a native frame)."""

    def __init__(self) -> None:
        self._layouts: dict[tuple, PixelLayout] = {}

    def layout(self, ds: pydicom.Dataset) -> PixelLayout:
        key = (_raw_values(ds), _syntax_key(ds))
        if key not in self._layouts:
            self._layouts[key] = _pixel_layout(ds)
        return self._layouts[key]


def decode_hu(
    path: str,
    ds: pydicom.Dataset,
    out: np.ndarray | None = None,
    buffer: np.ndarray | None = None,
    pixel_offset: int | None = None,
    layout: PixelLayout | None = None,
    scratch: np.ndarray | None = None,
) -> np.ndarray:
    """One slice in HU, rounded, clipped to [-1024, 32767], int16 of shape (Rows, Columns).

    RescaleSlope/Intercept (0028,1053)/(0028,1052) are applied. Native 16-bit pixels are read
    straight from the PixelData bytes (sign-extended when BitsStored < 16); other native data
    by pydicom; compressed transfer syntaxes (JPEG, JPEG-LS, JPEG 2000, RLE) by SimpleITK's
    GDCM, which applies the rescale itself.

    Args:
        path: The slice's file (GDCM reads compressed frames from it).
        ds: Its dataset, with or without the pixel data.
        out: int16 (Rows, Columns) array to write into; a new one when None.
        buffer: int32 (Rows, Columns) scratch array, reused across slices to save allocations.
        pixel_offset: Where (7FE0,0010) starts in the file, when ``ds`` was read without it.
        layout: ``ds``'s pixel layout, e.g. from a ``LayoutCache``; read from ``ds`` if None.
        scratch: uint16 (Rows, Columns) array for the stored values, reused across slices.

    Raises:
        ValueError: the pixel data is missing, truncated or cannot be decoded.
    """
    layout = layout or _pixel_layout(ds)
    out = np.empty((layout.rows, layout.columns), np.int16) if out is None else out
    if layout.syntax.is_compressed:
        return _to_int16_hu(_decode_with_gdcm(path, layout), 1.0, 0.0, out, buffer)
    stored = _native_16bit(ds, layout, path, pixel_offset, scratch)
    if stored is None:
        full = ds if "PixelData" in ds else pydicom.dcmread(path, force=True)
        if "TransferSyntaxUID" not in getattr(full, "file_meta", {}):
            full.file_meta = ds.file_meta
        stored = full.pixel_array
    if stored.ndim != 2:
        raise ValueError(f"expected one 2-D frame, got pixel data of shape {stored.shape}")
    return _to_int16_hu(stored, layout.slope, layout.intercept, out, buffer)


_LAYOUT_TAGS = tuple(BaseTag(tag_for_keyword(keyword)) for keyword in _LAYOUT_KEYWORDS)
"""As ``BaseTag``: pydicom looks them up without converting an int first."""


def _raw_values(ds: pydicom.Dataset) -> tuple:
    return tuple(ds.get_item(tag).value if tag in ds else None for tag in _LAYOUT_TAGS)


def _syntax_key(ds: pydicom.Dataset) -> str | None:
    meta = getattr(ds, "file_meta", None)
    return str(meta.TransferSyntaxUID) if meta is not None and "TransferSyntaxUID" in meta else None


def _pixel_layout(ds: pydicom.Dataset) -> PixelLayout:
    return PixelLayout(
        rows=int(ds.Rows),
        columns=int(ds.Columns),
        bits_allocated=int(ds.get("BitsAllocated", 0) or 0),
        bits_stored=int(ds.get("BitsStored", 16) or 16),
        signed=int(ds.get("PixelRepresentation", 0) or 0) == 1,
        samples=int(ds.get("SamplesPerPixel", 1) or 1),
        slope=float(ds.get("RescaleSlope", 1) or 1),
        intercept=float(ds.get("RescaleIntercept", 0) or 0),
        syntax=_transfer_syntax(ds),
    )


def _native_16bit(
    ds: pydicom.Dataset,
    layout: PixelLayout,
    path: str,
    pixel_offset: int | None,
    scratch: np.ndarray | None,
) -> np.ndarray | None:
    """Stored values of a little-endian 16-bit monochrome frame, or None for other layouts.

    The values land in ``scratch`` (uint16, reused across slices: no allocation per slice).
    """
    syntax = layout.syntax
    if not syntax.is_little_endian or layout.bits_allocated != 16 or layout.samples != 1:
        return None
    shape = (layout.rows, layout.columns)
    if scratch is None or scratch.shape != shape:
        scratch = np.empty(shape, dtype=np.uint16)
    if "PixelData" in ds:
        data = ds.PixelData
        if len(data) < scratch.nbytes:
            raise ValueError(f"PixelData holds {len(data)} bytes, {scratch.nbytes} expected")
        np.copyto(scratch, np.frombuffer(data, "<u2", count=scratch.size).reshape(shape))
    elif pixel_offset is not None:
        _read_pixel_data(path, pixel_offset, syntax.is_implicit_VR, scratch)
    else:
        return None
    stored = scratch.view(np.int16) if layout.signed else scratch
    bits = layout.bits_stored
    if bits < 16:  # unused high bits may hold anything: mask them, sign-extend signed values
        if layout.signed:
            np.left_shift(stored, 16 - bits, out=stored)
            np.right_shift(stored, 16 - bits, out=stored)
        else:
            np.bitwise_and(stored, np.uint16((1 << bits) - 1), out=stored)
    return stored


_LONG_VRS = {b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"UN"}


def _read_pixel_data(path: str, offset: int, implicit_vr: bool, into: np.ndarray) -> None:
    """Read the PixelData element that starts at ``offset`` (native encoding) into ``into``."""
    with open(path, "rb") as handle:
        handle.seek(offset)
        head = handle.read(8)
        if head[:4] != b"\xe0\x7f\x10\x00":
            raise ValueError(f"no PixelData element at byte {offset}")
        if implicit_vr:
            length = int.from_bytes(head[4:8], "little")
        elif head[4:6] in _LONG_VRS:
            length = int.from_bytes(handle.read(4), "little")
        else:
            length = int.from_bytes(head[6:8], "little")
        if length == 0xFFFFFFFF:
            raise ValueError("encapsulated PixelData in a native transfer syntax")
        if length < into.nbytes:
            raise ValueError(f"PixelData holds {length} bytes, {into.nbytes} expected")
        got = handle.readinto(memoryview(into).cast("B"))
        if got < into.nbytes:
            raise ValueError(f"file ends after {got} of {into.nbytes} pixel bytes (truncated)")


def _to_int16_hu(
    stored: np.ndarray,
    slope: float,
    intercept: float,
    out: np.ndarray,
    buffer: np.ndarray | None,
) -> np.ndarray:
    """HU = stored · slope + intercept, rounded and clipped to [-1024, 32767] into ``out``."""
    if stored.shape != out.shape:
        raise ValueError(f"frame of shape {stored.shape} where {out.shape} was expected")
    integral = stored.dtype.kind in "iu" and slope == 1.0 and intercept == int(intercept)
    if integral and stored.dtype.itemsize <= 2:
        low, high = int(stored.min()), int(stored.max())
        if -32768 <= low + intercept and high + intercept <= 32767:  # fits: add in int16
            _add_in_int16(stored, int(intercept), high, out)
            if low + intercept < HU_FLOOR:  # two-sided int16 clip: numpy vectorises it
                np.clip(out, np.int16(HU_FLOOR), np.int16(32767), out=out)
            return out
    if integral:
        if buffer is None or buffer.shape != stored.shape:
            buffer = np.empty(stored.shape, dtype=np.int32)
        np.add(stored, int(intercept), out=buffer, dtype=np.int32)
        hu = buffer
    else:
        hu = np.rint(stored.astype(np.float64) * slope + intercept)
    np.clip(hu, HU_FLOOR, 32767, out=out, casting="unsafe")
    return out


def _add_in_int16(stored: np.ndarray, intercept: int, high: int, out: np.ndarray) -> None:
    """``out = stored + intercept`` for stored values and sums known to fit in int16.

    Adding in int16 (no widening) is exact then, and several times faster than int32.
    """
    if stored.dtype == np.uint16 and high <= 32767:
        stored = stored.view(np.int16)  # same values
    if stored.dtype == np.int16 and -32768 <= intercept <= 32767:
        np.add(stored, np.int16(intercept), out=out)
    else:
        np.add(stored, np.int32(intercept), out=out, casting="unsafe")


def _transfer_syntax(ds: pydicom.Dataset) -> UID:
    """The transfer syntax, filled in from the encoding for files without a file meta group."""
    meta = getattr(ds, "file_meta", None)
    if meta is not None and "TransferSyntaxUID" in meta:
        return UID(meta.TransferSyntaxUID)
    implicit = ds.original_encoding[0] if ds.original_encoding else True
    syntax = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
    ds.file_meta = meta or pydicom.dataset.FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = syntax
    return UID(syntax)


def _decode_with_gdcm(path: str, layout: PixelLayout) -> np.ndarray:
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetImageIO("GDCMImageIO")
    reader.SetFileName(str(path))
    array = np.squeeze(sitk.GetArrayFromImage(reader.Execute()))
    if array.shape != (layout.rows, layout.columns):
        raise ValueError(
            f"decoded frame has shape {array.shape}, header says {(layout.rows, layout.columns)}"
        )
    return array
