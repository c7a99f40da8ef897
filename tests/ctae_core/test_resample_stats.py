"""Canonical isotropic resampling, scan statistics, and volume files (NIfTI / MHA / NRRD)."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from ctae_core.errors import InvalidSeriesError
from ctae_core.io.resample import resample_isotropic
from ctae_core.io.volume_files import read_volume_file
from ctae_core.stats import HU_HISTOGRAM_EDGES, check_plausible_hu, scan_statistics
from ctae_core.volume import Volume


def _block_volume(direction=(1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0)) -> Volume:
    hu = np.full((30, 30, 30), -2000.0, dtype=np.float32)  # padding below -1024
    hu[6:24, 6:24, 6:24] = 100.0
    return Volume(hu, (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), direction)


def test_resample_to_3mm_keeps_extent_values_and_clips_background():
    out = resample_isotropic(_block_volume(), 3.0)
    assert out.hu.dtype == np.int16 and out.shape == (10, 10, 10)
    assert out.spacing_zyx_mm == (3.0, 3.0, 3.0)
    assert out.hu.min() == -1024  # -2000 padding clipped, never below
    assert out.hu[4, 4, 4] == 100  # inside the block
    assert out.hu[0, 0, 0] == -1024
    assert out.origin_xyz_mm == pytest.approx((1.0, 1.0, 1.0))  # box -0.5..29.5, 3 mm voxel centres


def test_feet_first_and_flipped_inputs_land_on_the_same_canonical_grid():
    base = _block_volume()
    hu = base.hu.copy()
    hu[20:24, 6:10, 6:10] = 1500.0  # an asymmetric marker
    reference = resample_isotropic(Volume(hu, (1.0, 1.0, 1.0)), 3.0)
    flipped = Volume(
        hu[::-1, ::-1, :].copy(), (1.0, 1.0, 1.0), (0.0, 29.0, 29.0),
        (1.0, 0, 0, 0, -1.0, 0, 0, 0, -1.0),
    )
    out = resample_isotropic(flipped, 3.0)
    assert out.origin_xyz_mm == pytest.approx(reference.origin_xyz_mm)
    assert np.array_equal(out.hu, reference.hu)


def test_resample_refuses_non_positive_spacing():
    with pytest.raises(ValueError, match="spacing_mm must be positive"):
        resample_isotropic(_block_volume(), 0.0)


def test_scan_statistics_counts_body_metal_and_histogram():
    hu = np.full((4, 10, 10), -1024, dtype=np.int16)
    hu[0, :5] = 40  # 50 soft tissue
    hu[1, 0, :3] = 3050  # 3 metal
    hu[2, 0, 0] = -995  # just below the body threshold
    stats = scan_statistics(hu, 3.0)
    assert stats.pixel_count == 400 and stats.size_zyx == (4, 10, 10)
    assert stats.body_voxels == 53 and stats.metal_voxels == 3
    assert stats.hu_min == -1024 and stats.hu_max == 3050
    assert stats.hu_mean == pytest.approx(hu.mean())
    assert sum(stats.hu_histogram) == 400 and len(stats.hu_histogram) == 64
    assert stats.hu_histogram[0] == 347  # -1024 and -995 share the first 64 HU bin
    assert stats.hu_histogram[int((40 + 1024) // 64)] == 50
    assert stats.hu_histogram[-1] == 3  # 3050 lies in the last bin [3008, 3072)
    assert len(HU_HISTOGRAM_EDGES) == 65 and HU_HISTOGRAM_EDGES[-1] == 3072


def test_plausibility_check_rejects_values_without_air():
    check_plausible_hu(np.full((4, 8, 8), -1000.0), "ok")
    with pytest.raises(InvalidSeriesError) as err:
        check_plausible_hu(np.full((4, 8, 8), 12.0), "scan-x")
    assert err.value.reason == "implausible_hu" and "scan-x" in str(err.value)
    assert "MR or display-scaled data labelled CT?" in str(err.value)


def test_a_ct_stored_without_its_intercept_is_told_so(phantom_hu):
    # HU + 1024 as an unsigned store holds it: air near 0, soft tissue near 1064. Until stop 56
    # it was asked whether it was MR or display-scaled data
    with pytest.raises(InvalidSeriesError) as err:
        check_plausible_hu((phantom_hu.astype(np.int32) + 1024).astype(np.uint16), "raw")
    said = str(err.value)
    assert "they look like HU + 1024: a CT stored unsigned without its rescale intercept" in said
    assert "set the intercept to -1024" in said and "MR or display" not in said
    display = np.clip((phantom_hu.astype(np.float32) + 160) * 255 / 400, 0, 255)  # a W400/L40 window
    with pytest.raises(InvalidSeriesError, match="MR or display-scaled data labelled CT"):
        check_plausible_hu(display, "shown")


@pytest.mark.parametrize("suffix", [".nii.gz", ".mha", ".nrrd"])
def test_volume_files_read_as_hu_with_their_geometry(tmp_path, phantom_hu, suffix):
    image = sitk.GetImageFromArray(phantom_hu)
    image.SetSpacing((0.9, 0.8, 2.0))
    image.SetOrigin((10.0, -5.0, 3.0))
    image.SetDirection((-1.0, 0, 0, 0, -1.0, 0, 0, 0, 1.0))
    path = tmp_path / f"scan{suffix}"
    sitk.WriteImage(image, str(path))
    volume, facts = read_volume_file(str(path))
    assert np.array_equal(volume.hu, phantom_hu.astype(np.float32).clip(-1024))
    assert volume.spacing_zyx_mm == pytest.approx((2.0, 0.8, 0.9))
    assert volume.origin_xyz_mm == pytest.approx((10.0, -5.0, 3.0))
    assert volume.direction == pytest.approx((-1.0, 0, 0, 0, -1.0, 0, 0, 0, 1.0))
    assert facts.orig_size_zyx == (16, 32, 32) and facts.manufacturer is None


def test_uint8_volume_is_refused_as_not_hu(tmp_path):
    path = tmp_path / "display.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((10, 8, 8), np.uint8)), str(path))
    with pytest.raises(InvalidSeriesError) as err:
        read_volume_file(str(path), "display.nii.gz")
    assert err.value.reason == "not_hu" and "display.nii.gz" in str(err.value)


def test_broken_volume_file_is_refused_as_unreadable(tmp_path):
    path = tmp_path / "half.nii.gz"
    path.write_bytes(b"\x1f\x8b" + b"\0" * 40)
    with pytest.raises(InvalidSeriesError) as err:
        read_volume_file(str(path))
    assert err.value.reason == "unreadable"


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz", ".mha"])
def test_a_voxel_size_of_zero_in_the_header_is_refused_not_read_as_1_mm(tmp_path, suffix):
    # until stop 57 a NIfTI whose pixdim[1] was 0 was stored at 1 mm (ITK and nibabel both read
    # 0 as 1, without a word); an MHA's was refused as "unreadable … is it complete?"
    import gzip

    image = sitk.GetImageFromArray(np.full((10, 12, 14), -1000, np.int16))
    image.SetSpacing((0.7, 0.7, 2.5))
    path = tmp_path / f"scan{suffix}"
    sitk.WriteImage(image, str(path))
    if suffix == ".mha":
        header, pixels = path.read_bytes().split(b"ElementDataFile", 1)
        lines = [b"ElementSpacing = 0 0.7 2.5" if line.startswith(b"ElementSpacing") else line
                 for line in header.split(b"\n")]
        path.write_bytes(b"\n".join(lines) + b"ElementDataFile" + pixels)
    else:
        opener = gzip.open if suffix.endswith(".gz") else open
        with opener(path, "rb") as handle:
            raw = bytearray(handle.read())
        raw[80:84] = np.float32(0).tobytes()  # pixdim[1], little-endian as ITK writes it
        with opener(path, "wb") as handle:
            handle.write(bytes(raw))
    with pytest.raises(InvalidSeriesError) as err:
        read_volume_file(str(path), f"scan{suffix}")
    assert err.value.reason == "bad_header_value"
    assert str(err.value).startswith(f"scan{suffix}: the header gives a voxel size of 0")
