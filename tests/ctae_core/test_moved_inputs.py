"""Inputs found again after their folder moved (``ctae_core.io.moved_inputs``)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ctae_core.io.moved_inputs import StoredInput, StoredPlaces, unchanged_since
from ctae_core.io.sources import SeriesSource, fingerprint_files

GONE = "/mnt/old-disk/archive"


def _series(root: Path, path: str, uid: str | None = "1.2.3") -> SeriesSource:
    files = sorted(str(f) for f in (root / path).iterdir())
    return SeriesSource("dicom", str(root), path, uid, tuple(files),
                        fingerprint_files([Path(f) for f in files], root), uid or "fallback")


def _volume(root: Path, path: str) -> SeriesSource:
    file = root / path
    return SeriesSource("nifti", str(root), path, None, (str(file),),
                        fingerprint_files([file], root), path)


def _write(folder: Path, names: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        (folder / name).write_bytes(b"x" * (100 + i))
        os.utime(folder / name, ns=(10**18 + i, 10**18 + i))


def test_a_series_is_known_by_its_uid_wherever_it_moved_once_its_old_place_is_gone(tmp_path):
    _write(tmp_path / "new" / "p1" / "ct", ["1.dcm", "2.dcm"])
    source = _series(tmp_path / "new", "p1/ct")
    stored = StoredInput("id-old", "dicom", GONE, "elsewhere/ct", "1.2.3", "f")
    found = StoredPlaces([stored]).identify(source, "id-new")
    assert found.scan_id == "id-old" and found == source  # the same input, the catalog's id
    assert StoredPlaces([stored]).moved(found) == stored

    still_there = StoredPlaces([stored], exists=lambda _: True)
    assert still_there.identify(source, "id-new").scan_id is None  # a copy: a scan of its own
    twice = StoredPlaces([stored, StoredInput("id-2", "dicom", "/gone2", "ct", "1.2.3", "f")])
    assert twice.identify(source, "id-new").scan_id is None  # two candidates: neither is sure
    redacted = StoredPlaces([StoredInput("id-old", "dicom", "a1b2", "ct", "1.2.3", "f")])
    assert redacted.identify(source, "id-new").scan_id is None  # a pseudonym names no place
    other = StoredPlaces([StoredInput("id-old", "dicom", GONE, "ct", "1.2.4", "f")])
    assert other.identify(source, "id-new").scan_id is None


def test_a_volume_file_is_known_by_its_path_tail_and_unchanged_files(tmp_path):
    _write(tmp_path / "old" / "s1", ["ct.nii.gz"])
    before = _volume(tmp_path / "old", "s1/ct.nii.gz")
    stored = StoredInput("id-old", "nifti", GONE, "s1/ct.nii.gz", None, before.fingerprint)
    (tmp_path / "new" / "deeper").mkdir(parents=True)
    shutil.move(tmp_path / "old", tmp_path / "new" / "deeper" / "archive")  # keeps the times
    wider = _volume(tmp_path / "new", "deeper/archive/s1/ct.nii.gz")
    assert unchanged_since(wider, stored)
    assert StoredPlaces([stored]).identify(wider, "id-new").scan_id == "id-old"

    other_patient = StoredInput("id-old", "nifti", GONE, "s2/ct.nii.gz", None, before.fingerprint)
    assert StoredPlaces([other_patient]).identify(wider, "id-new").scan_id is None
    os.utime(wider.files[0], ns=(1, 1))  # rewritten: nothing says it is the same scan
    assert not unchanged_since(wider, stored)
    assert StoredPlaces([stored]).identify(wider, "id-new").scan_id is None


def test_a_scan_stored_at_its_new_place_keeps_the_id_it_had(tmp_path):
    _write(tmp_path / "new" / "ct", ["1.dcm"])
    source = _series(tmp_path / "new", "ct")
    stored = StoredInput("id-old", "dicom", str(tmp_path / "new"), "ct", "1.2.3", "f")
    places = StoredPlaces([stored])
    found = places.identify(source, "id-new")
    assert found.scan_id == "id-old" and places.moved(found) is None  # moved before, not now
    assert places.identify(source, "id-old") is source
