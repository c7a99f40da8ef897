"""Decode one DICOM slice to Hounsfield units: pydicom for native pixels, GDCM for the rest."""

from __future__ import annotations

import numpy as np
import pydicom
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian


def decode_hu(path: str, ds: pydicom.Dataset) -> np.ndarray:
    """One slice in HU (RescaleSlope/Intercept applied), float32 of shape (Rows, Columns).

    Native (uncompressed) pixels are decoded by pydicom; compressed transfer syntaxes (JPEG,
    JPEG-LS, JPEG 2000, RLE) by SimpleITK's GDCM, which applies the rescale itself.

    Raises:
        ValueError: the pixel data is truncated or cannot be decoded.
    """
    syntax = _transfer_syntax(ds)
    if syntax.is_compressed:
        return _decode_with_gdcm(path, ds)
    stored = ds.pixel_array
    if stored.ndim != 2:
        raise ValueError(f"expected one 2-D frame, got pixel data of shape {stored.shape}")
    slope = float(ds.get("RescaleSlope", 1) or 1)
    intercept = float(ds.get("RescaleIntercept", 0) or 0)
    hu = stored.astype(np.float32)
    if slope != 1.0:
        hu *= np.float32(slope)
    if intercept != 0.0:
        hu += np.float32(intercept)
    return hu


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


def _decode_with_gdcm(path: str, ds: pydicom.Dataset) -> np.ndarray:
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetImageIO("GDCMImageIO")
    reader.SetFileName(str(path))
    array = sitk.GetArrayFromImage(reader.Execute())
    array = np.squeeze(array)
    if array.shape != (int(ds.Rows), int(ds.Columns)):
        raise ValueError(
            f"decoded frame has shape {array.shape}, header says {(ds.Rows, ds.Columns)}"
        )
    return array.astype(np.float32, copy=False)
