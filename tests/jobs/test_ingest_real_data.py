"""Every input of ../shared/data/real-ct through `ctae ingest`: the expected outcome for each,
and geometry + HU checked against SimpleITK reading the same input and against dcm2niix."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from ctae_core.io.dicom_series import read_dicom_series
from ctae_core.io.resample import resample_isotropic
from ctae_core.io.volume_store import load_volume
from ctae_core.volume import Volume
from data_catalog import CatalogSettings, connect
from data_catalog.scans import list_ingest_errors, scans_table
from jobs.ingest import run_ingest
from tests.conftest import SHARED_DATA

CHEST = "dlwpt-cptac-lscc-chest/volumetric-dicom/2-LUNG 3.0  B70f-04083"
J2K_NO_UIDS = "totalseg-example/example_ct_dicom"
TILTED = "dcm_qa_ct/In/GE"
INGESTED = {
    CHEST,
    J2K_NO_UIDS,
    TILTED,
    "totalseg-example/example_ct.nii.gz",
    "totalseg-example/example_ct_sm.nii.gz",
}
REFUSED = Counter(
    {
        ("ct-singles/pydicom-data", "single_slice"): 2,
        ("ct-singles/pydicom-data", "multiframe"): 1,
        ("ct-singles/pydicom-wheel", "single_slice"): 1,
        ("ct-singles/pylibjpeg-data/ds/JPEG2000", "single_slice"): 1,
        ("ct-singles/pylibjpeg-data/ds/JPEG2000", "localizer"): 1,
        ("ct-singles/pylibjpeg-data/ds/JPEG2000Lossless", "single_slice"): 2,
        ("ct-singles/pylibjpeg-data/ds/JPEG2000Lossless", "conflicting_slices"): 1,
        ("ct-singles/pylibjpeg-data/ds/JPEGLS", "single_slice"): 1,
        ("dcm_qa_ct/In/Philips/S21610/S1000", "localizer"): 1,
        ("dcm_qa_ct/In/Philips/S21610/S4010", "secondary_capture"): 1,
        ("dcmqi-ct-3slice/segmentations/ct-3slice", "too_few_slices"): 1,
        ("dicom-numpy-dupe-positions/dupe-positions", "missing_slices"): 1,
        ("lungmask-testdata/testdata", "too_few_slices"): 1,
        ("torchio-itk-written-dicom/image_data/dicom", "implausible_hu"): 1,
        ("niivue-images-ct/CT_AVM.nii.gz", "implausible_hu"): 1,
        ("niivue-images-ct/CT_pitch.nii.gz", "not_hu"): 1,
    }
)


@pytest.fixture(scope="module")
def ingested(tmp_path_factory):
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real CT data not found at {SHARED_DATA}; it is present in CI")
    tmp = tmp_path_factory.mktemp("real")
    settings = CatalogSettings.resolve(tmp / "catalog.duckdb", tmp / "store", env={})
    summary = run_ingest([SHARED_DATA], settings, workers=2, progress=False)
    with connect(settings.catalog_path, read_only=True) as con:
        scans, errors = scans_table(con), list_ingest_errors(con)
    return summary, scans.set_index("source_path"), errors


@pytest.fixture(scope="module")
def dcm2niix() -> str:
    exe = shutil.which("dcm2niix") or str(Path(sys.executable).with_name("dcm2niix"))
    if not Path(exe).exists():
        pytest.skip("dcm2niix is not installed (pip install dcm2niix, part of the dev extra)")
    return exe


def _series_files(rel: str) -> list[str]:
    return sorted(str(p) for p in (SHARED_DATA / rel).iterdir() if p.is_file())


def _volume(image: sitk.Image) -> Volume:
    return Volume(
        sitk.GetArrayFromImage(image).astype(np.float32),
        image.GetSpacing()[::-1],
        image.GetOrigin(),
        image.GetDirection(),
    )


def _sitk_series(rel: str) -> sitk.Image:
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(SHARED_DATA / rel)))
    return reader.Execute()


def _dcm2niix(exe: str, rel: str, out: Path) -> list[Path]:
    out.mkdir(parents=True)
    subprocess.run(
        [exe, "-z", "n", "-b", "n", "-o", str(out), "-f", "x", str(SHARED_DATA / rel)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return sorted(out.glob("*.nii"))


def _on_grid(image: sitk.Image, grid: Volume) -> np.ndarray:
    """``image`` resampled (linear) onto the voxel grid of a canonical volume, clipped HU."""
    out = sitk.Resample(
        image,
        grid.shape[::-1],
        sitk.Transform(),
        sitk.sitkLinear,
        grid.origin_xyz_mm,
        grid.spacing_zyx_mm[::-1],
        grid.direction,
        -1024.0,
        sitk.sitkFloat32,
    )
    return sitk.GetArrayFromImage(out).clip(-1024)


def _bone_centre_mm(hu: np.ndarray, grid: Volume) -> np.ndarray:
    z, y, x = np.nonzero(hu > 300)
    return np.asarray(grid.origin_xyz_mm) + np.array([x.mean(), y.mean(), z.mean()]) * 3.0


def test_every_real_input_is_ingested_or_refused_with_its_reason(ingested):
    summary, scans, errors = ingested
    assert set(scans.index) == INGESTED and summary.ingested == 5
    assert Counter(zip(errors["source_path"], errors["reason"], strict=True)) == REFUSED
    assert summary.skipped_files == {"not_dicom": 14, "dicom_directory": 3}
    assert scans.loc[TILTED, "gantry_tilt_deg"] == pytest.approx(18.5)
    assert scans.loc[CHEST, "reversed_slices"] and scans.loc[CHEST, "kernel"] == "B70f"
    assert scans.loc[J2K_NO_UIDS, "series_uid"] is None or np.isnan(
        scans.loc[J2K_NO_UIDS, "series_uid"]
    )


@pytest.mark.parametrize("rel", [CHEST, J2K_NO_UIDS])
def test_dicom_hu_and_geometry_match_simpleitk_and_dcm2niix(ingested, dcm2niix, tmp_path, rel):
    _, scans, _ = ingested
    row = scans.loc[rel]
    stored = load_volume(row.volume_path)
    volume, _ = read_dicom_series(_series_files(rel), rel)
    image = _sitk_series(rel)
    assert np.array_equal(volume.hu, sitk.GetArrayFromImage(image).clip(-1024))
    assert volume.origin_xyz_mm == pytest.approx(image.GetOrigin(), abs=1e-3)
    assert row.orig_direction == pytest.approx(image.GetDirection(), abs=1e-4)
    assert (row.orig_spacing_z_mm, row.orig_spacing_y_mm, row.orig_spacing_x_mm) == pytest.approx(
        image.GetSpacing()[::-1]
    )
    assert np.array_equal(resample_isotropic(_volume(image), 3.0).hu, stored)
    grid = resample_isotropic(volume, 3.0)
    (nifti,) = _dcm2niix(dcm2niix, rel, tmp_path / "d2n")
    reference = _on_grid(sitk.ReadImage(str(nifti)), grid)
    assert np.abs(reference - stored).max() <= 1.0  # same grid: only float rounding differs


def test_gantry_tilt_is_corrected_like_dcm2niix(ingested, dcm2niix, tmp_path):
    _, scans, _ = ingested
    stored = load_volume(scans.loc[TILTED, "volume_path"])
    volume, facts = read_dicom_series(_series_files(TILTED), TILTED)
    grid = resample_isotropic(volume, 3.0)
    assert np.array_equal(grid.hu, stored)
    assert any("uneven slice gaps" in w for w in facts.warnings)
    corrected = [p for p in _dcm2niix(dcm2niix, TILTED, tmp_path / "d2n") if "Tilt" in p.name]
    reference = _on_grid(sitk.ReadImage(str(corrected[0])), grid)
    ours_mm = _bone_centre_mm(stored, grid)
    assert ours_mm == pytest.approx(_bone_centre_mm(reference, grid), abs=1.0)
    body = (reference > -500) | (stored > -500)
    assert np.abs(reference - stored)[body].mean() < 60.0  # 3 mm head edges, two interpolations
    sitk.ProcessObject_SetGlobalWarningDisplay(False)
    naive = resample_isotropic(_volume(_sitk_series(TILTED)), 3.0)  # no tilt correction
    sitk.ProcessObject_SetGlobalWarningDisplay(True)
    assert np.linalg.norm(_bone_centre_mm(naive.hu, naive) - ours_mm) > 10.0


def test_image_noise_is_measured_on_the_acquired_grid(ingested):
    # the sharp B70f chest (0.56 mm pixels) against the smooth TotalSegmentator abdomen (0.98 mm):
    # ingest's measure is that of SimpleITK's reading of the same slices, and on the stored 3 mm
    # grid the chest's sharp-kernel noise is averaged down to anatomy's level
    from ctae_core.noise import native_noise_estimate, noise_estimate

    _, scans, _ = ingested
    chest, abdomen = scans.loc[CHEST], scans.loc[J2K_NO_UIDS]
    assert chest.native_noise_hu == pytest.approx(
        native_noise_estimate(sitk.GetArrayFromImage(_sitk_series(CHEST)).clip(-1024)), rel=1e-6)
    assert chest.native_noise_hu > 50.0 and abdomen.native_noise_hu < 12.0
    stored = [noise_estimate(load_volume(row.volume_path)) for row in (chest, abdomen)]
    ratio_stored = stored[0] / stored[1]
    assert chest.native_noise_hu / abdomen.native_noise_hu > 1.5 * ratio_stored
    assert scans["native_noise_hu"].notna().all()  # every ingested scan, volume files too


@pytest.mark.parametrize("name", ["example_ct.nii.gz", "example_ct_sm.nii.gz"])
def test_nifti_matches_simpleitk(ingested, name):
    _, scans, _ = ingested
    row = scans.loc[f"totalseg-example/{name}"]
    image = sitk.ReadImage(str(SHARED_DATA / "totalseg-example" / name))
    expected = resample_isotropic(_volume(image), 3.0)
    assert np.array_equal(load_volume(row.volume_path), expected.hu)
    assert (row.size_z, row.size_y, row.size_x) == image.GetSize()[::-1]  # already 3 mm
