"""Reading synthetic DICOM series: HU, order, geometry, repairs and refusals."""

from __future__ import annotations

import shutil
import warnings

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from ctae_core.errors import InvalidSeriesError
from ctae_core.io.dicom_series import read_dicom_series
from ctae_core.io.dicom_writer import SeriesHeaderSpec, write_series
from ctae_core.io.resample import resample_isotropic
from ctae_core.io.sources import discover_sources
from tests.dicom_factory import compress_rle, phantom, truncate, write_junk, write_phantom


def _read(paths):
    return read_dicom_series([str(p) for p in paths])


def _bone_centroid_xyz(volume) -> np.ndarray:
    """Physical (x, y, z) centre of the > 500 HU voxels of a canonical (identity) volume."""
    z, y, x = np.nonzero(volume.hu > 500)
    index = np.array([x.mean(), y.mean(), z.mean()])
    return np.asarray(volume.origin_xyz_mm) + index * np.array(volume.spacing_zyx_mm[::-1])


def test_writer_output_opens_in_simpleitk_and_pydicom_without_warnings(tmp_path):
    hu = phantom()
    paths = write_phantom(tmp_path, hu, origin_xyz_mm=(-12.0, 30.0, 100.0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = pydicom.dcmread(paths[5])
        plane = pydicom.pixels.apply_rescale(ds.pixel_array, ds)
    assert np.array_equal(plane, hu[5])
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(tmp_path)))
    image = reader.Execute()
    assert np.array_equal(sitk.GetArrayFromImage(image), hu)
    assert image.GetSpacing() == pytest.approx((0.8, 0.8, 2.5))
    assert image.GetOrigin() == pytest.approx((-12.0, 30.0, 100.0))


def test_slope_intercept_and_shuffled_reversed_files_give_the_same_hu(tmp_path):
    hu = phantom()
    paths = write_phantom(
        tmp_path, hu, rescale_slope=0.5, rescale_intercept=-2048.0, shuffle_names=True,
        reverse_order=True, file_suffix="",
    )
    volume, facts = _read(paths[::-1])
    assert np.array_equal(volume.hu, hu.astype(np.float32).clip(-1024))
    assert volume.spacing_zyx_mm == pytest.approx((2.5, 0.8, 0.8))
    assert facts.reversed_slices is True
    assert facts.missing_slices == facts.duplicate_slices == 0


def test_discovery_groups_two_series_in_one_folder_and_skips_junk(tmp_path):
    first = write_phantom(tmp_path, header=SeriesHeaderSpec(series_uid="1.2.3.1"), file_suffix="")
    for path in first:  # same names as the second series would use
        path.rename(path.with_name("A" + path.name))
    write_phantom(tmp_path, phantom(seed=3), header=SeriesHeaderSpec(series_uid="1.2.3.2"))
    write_junk(tmp_path)
    found = discover_sources([tmp_path])
    assert sorted(s.series_uid for s in found.sources) == ["1.2.3.1", "1.2.3.2"]
    assert all(len(s.files) == 24 for s in found.sources)
    assert found.skipped_files == {"dicom_directory": 1, "not_dicom": 2}


def test_empty_series_uid_falls_back_to_a_folder_key(tmp_path):
    paths = write_phantom(tmp_path / "a", header=SeriesHeaderSpec(series_uid="9.9"))
    for path in paths:
        ds = pydicom.dcmread(path)
        ds.SeriesInstanceUID = ""
        ds.save_as(path)
    (source,) = discover_sources([tmp_path]).sources
    assert source.series_uid is None and source.group_key.startswith("nouid:")
    assert source.source_path == "a"


def test_gantry_tilt_is_recorded_and_corrected_in_physical_space(tmp_path):
    hu = phantom((24, 40, 40))
    spacing = (2.0, 1.0, 1.0)
    flat = write_series(hu, spacing, tmp_path / "flat")
    tilted = write_series(hu, spacing, tmp_path / "tilt", header=SeriesHeaderSpec(gantry_tilt_deg=20))
    _, flat_facts = _read(flat)
    volume, facts = _read(tilted)
    assert flat_facts.gantry_tilt_deg == 0.0
    assert facts.gantry_tilt_deg == pytest.approx(20.0)
    # The bone's true position: plane k, row i, column j sit at origin + j·x + i·col' + k·step.
    z, y, x = np.nonzero(hu > 500)
    tilt = np.radians(20)
    col = np.array([0.0, np.cos(tilt), np.sin(tilt)])
    step = np.array([0.0, 0.0, 2.0 / np.cos(tilt)])
    expected = np.mean(x)[None] * np.array([1.0, 0, 0]) + np.mean(y) * col + np.mean(z) * step
    resampled = resample_isotropic(volume, 1.0)
    assert _bone_centroid_xyz(resampled) == pytest.approx(expected, abs=0.6)


def test_one_missing_slice_is_interpolated_and_recorded(tmp_path):
    hu = phantom()
    paths = write_phantom(tmp_path, hu)
    paths[10].unlink()
    volume, facts = _read(paths[:10] + paths[11:])
    assert facts.missing_slices == 1
    assert volume.shape == hu.shape and volume.spacing_zyx_mm[0] == pytest.approx(2.5)
    expected = (hu[9].astype(np.float32) + hu[11]) / 2
    assert np.abs(volume.hu[10] - expected.clip(-1024)).max() <= 0.5
    assert np.array_equal(volume.hu[11], hu[11].astype(np.float32))


def test_too_many_missing_slices_are_refused(tmp_path):
    paths = write_phantom(tmp_path)
    kept = [p for k, p in enumerate(paths) if k % 4 != 1]
    with pytest.raises(InvalidSeriesError) as err:
        _read(kept)
    assert err.value.reason == "missing_slices"
    assert "6 of 24 slices are missing" in str(err.value)


def test_truncated_file_becomes_a_recorded_gap(tmp_path):
    paths = write_phantom(tmp_path)
    truncate(paths[7])
    volume, facts = _read(paths)
    assert facts.missing_slices == 1
    assert any("undecodable" in w for w in facts.warnings)
    assert volume.shape[0] == 24


def test_duplicated_slice_is_dropped(tmp_path):
    paths = write_phantom(tmp_path)
    copy = tmp_path / "copy_of_slice.dcm"
    shutil.copy(paths[3], copy)
    volume, facts = _read(paths + [copy])
    assert facts.duplicate_slices == 1 and volume.shape[0] == 24


def test_rle_compressed_series_reads_like_the_uncompressed_one(tmp_path):
    hu = phantom((10, 24, 24))
    paths = write_phantom(tmp_path, hu)
    compress_rle(paths)
    assert pydicom.dcmread(paths[0]).file_meta.TransferSyntaxUID.is_compressed
    volume, _ = _read(paths)
    assert np.array_equal(volume.hu, hu.astype(np.float32).clip(-1024))


def test_oblique_non_square_series_lands_where_its_voxels_are(tmp_path):
    hu = phantom((20, 36, 30))
    angle = np.radians(30)
    c, s = np.cos(angle), np.sin(angle)
    direction = (c, -s, 0.0, s, c, 0.0, 0.0, 0.0, 1.0)  # rotated 30 degrees about z
    spacing = (2.0, 0.7, 1.1)
    origin = np.array([5.0, -8.0, 40.0])
    paths = write_series(hu, spacing, tmp_path, origin_xyz_mm=origin, direction=direction)
    volume, _ = _read(paths)
    z, y, x = np.nonzero(hu > 500)
    matrix = np.array(direction).reshape(3, 3) * np.array([1.1, 0.7, 2.0])
    expected = origin + matrix @ np.array([x.mean(), y.mean(), z.mean()])
    assert _bone_centroid_xyz(resample_isotropic(volume, 1.0)) == pytest.approx(expected, abs=0.6)


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"header": SeriesHeaderSpec(modality="MR")}, "not_ct"),
        ({"header": SeriesHeaderSpec(image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"))}, "localizer"),
        ({"header": SeriesHeaderSpec(extra={"SOPClassUID": "1.2.840.10008.5.1.4.1.1.7"})},
         "secondary_capture"),
        ({"rescale_intercept": 0.0, "hu": np.clip(phantom() + 1000, 0, 1400)}, "implausible_hu"),
        ({"hu": phantom((1, 32, 32))}, "single_slice"),
        ({"hu": phantom((4, 32, 32))}, "too_few_slices"),
    ],
)
def test_series_that_are_not_ct_volumes_are_refused_with_a_reason(tmp_path, kwargs, reason):
    hu = kwargs.pop("hu", None)
    paths = write_phantom(tmp_path, hu, **kwargs)
    with pytest.raises(InvalidSeriesError) as err:
        _read(paths)
    assert err.value.reason == reason
    assert str(tmp_path.name) in str(err.value) or str(paths[0]) in str(err.value)


def test_unsigned_12_bit_pixels_ignore_garbage_in_the_unused_high_bits(tmp_path):
    hu = phantom((10, 16, 16))
    paths = write_phantom(tmp_path, hu)
    for path in paths:
        ds = pydicom.dcmread(path)
        stored = ds.pixel_array.astype(np.uint16)  # HU + 1024: 0..~2000, fits in 12 bits
        ds.PixelRepresentation, ds.BitsStored, ds.HighBit = 0, 12, 11
        ds.PixelData = (stored | np.uint16(0xB000)).tobytes()  # vendor junk above bit 11
        ds.save_as(path)
    volume, _ = _read(paths)
    assert np.array_equal(volume.hu, hu.clip(-1024))


def test_parallel_decode_gives_the_same_volume_and_the_same_gaps(tmp_path):
    rng = np.random.default_rng(3)
    hu = rng.integers(-1024, 2000, (12, 16, 16), dtype=np.int16)
    paths = write_series(hu, (2.0, 0.8, 0.8), tmp_path / "s")
    truncate(paths[5], 0.9)  # pixels cut short: a gap
    files = [str(p) for p in paths]
    one, _ = read_dicom_series(files, "s")
    four, _ = read_dicom_series(files, "s", threads=4)
    assert np.array_equal(one.hu, four.hu) and one.spacing_zyx_mm == four.spacing_zyx_mm
    assert np.array_equal(four.hu[0], hu[0]) and not np.array_equal(four.hu[5], hu[5])  # the gap


def test_local_slice_steps_are_numpys_medians_without_its_masked_array_module(shared_data):
    import subprocess
    import sys
    from pathlib import Path

    from ctae_core.io import slice_geometry as geo

    def by_numpy(gaps, half=3):
        return np.array([np.median(gaps[max(0, i - half): i + half + 1]) for i in range(len(gaps))])

    rng = np.random.default_rng(7)
    for n in (1, 2, 3, 6, 7, 8, 13, 99):
        for jitter in (0.0, 1e-3):
            gaps = rng.choice([3.0, 3.0, 6.0, 2.5, 0.7], size=n) + rng.normal(0, jitter, n)
            assert np.array_equal(geo.local_steps(gaps), by_numpy(gaps))
            assert geo.median(gaps) == float(np.median(gaps))
    with_nan = np.array([3.0, np.nan, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0])
    assert np.array_equal(geo.local_steps(with_nan), by_numpy(with_nan), equal_nan=True)
    # np.median imports numpy.ma (~10 ms); the reader no longer does
    chest = shared_data / "dlwpt-cptac-lscc-chest"
    probe = (
        "import sys, glob\n"
        "from ctae_core.io.dicom_series import read_dicom_series\n"
        f"files = sorted(glob.glob({str(chest)!r} + '/volumetric-dicom/*/*.dcm'))\n"
        "volume, facts = read_dicom_series(files)\n"
        "print(volume.shape[0], 'numpy.ma' in sys.modules)\n"
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", probe], cwd=root, capture_output=True, text=True,
                          env={"PYTHONPATH": str(root)}, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["99", "False"]
