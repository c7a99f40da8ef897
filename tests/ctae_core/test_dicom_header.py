"""The header walker against pydicom itself, on every file of the shared real data: the same
elements with the same values, and PixelData where pydicom finds it."""

from __future__ import annotations

import pydicom
import pytest

from ctae_core.io.dicom_header import (
    SLICE_TAGS,
    HeaderRefusal,
    SliceHeader,
    read_slice_header,
)
from ctae_core.io.sources import quiet_pydicom
from tests.conftest import SHARED_DATA


def _every_file():
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real CT data not found at {SHARED_DATA}; it is present in CI")
    roots = [SHARED_DATA, SHARED_DATA.parent / "real-ct-anatomy"]
    return sorted(p for root in roots if root.is_dir() for p in root.rglob("*") if p.is_file())


def test_walker_reads_what_pydicom_reads_on_every_shared_file():
    checked = refused = 0
    with quiet_pydicom():
        for path in _every_file():
            with open(path, "rb") as handle:
                header = read_slice_header(handle, path.name)
            if isinstance(header, HeaderRefusal):
                refused += 1
                assert header.reason in {"not_dicom", "dicom_directory", "not_an_image"}, path
                continue
            assert isinstance(header, SliceHeader)
            expected = pydicom.dcmread(
                path, force=True, stop_before_pixels=True, specific_tags=SLICE_TAGS
            )
            got = {k: str(header.dataset.get(k)) for k in SLICE_TAGS if k in header.dataset}
            want = {k: str(expected.get(k)) for k in SLICE_TAGS if k in expected}
            assert got == want, path
            assert header.dataset.file_meta.TransferSyntaxUID == (
                expected.file_meta.TransferSyntaxUID
            )
            if header.pixel_offset is not None:
                with open(path, "rb") as handle:
                    handle.seek(header.pixel_offset)
                    assert handle.read(4) == b"\xe0\x7f\x10\x00", path  # (7FE0,0010)
            checked += 1
    # every DICOM slice of real-ct and real-ct-anatomy; the rest are notes, DIRFILEs, NIfTIs
    assert (checked, refused) == (459, 31), (checked, refused)
