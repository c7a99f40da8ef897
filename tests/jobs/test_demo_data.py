"""`ctae demo-data`: the written cohort, its ground truth, resumability, and the round trip
through `ctae ingest`."""

from __future__ import annotations

import csv
import json
import logging
import warnings
from collections import Counter

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.pixels import apply_rescale
from scipy.ndimage import map_coordinates
from typer.testing import CliRunner

from ctae_core.io.volume_store import load_volume
from ctae_core.phantoms import ScanSpec, render_spec
from data_catalog import connect
from data_catalog.scans import list_ingest_errors, scans_table
from jobs.cli import app
from jobs.demo_data import PHANTOM_TRUTH_COLUMNS, series_uid_for, write_scan


def _run(*args):
    return CliRunner().invoke(app, [*map(str, args)])


def _truth(out) -> list[dict[str, str]]:
    with (out / "ground_truth.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_demo_data_writes_series_and_truth_then_resumes(tmp_path):
    out = tmp_path / "cohort"
    result = _run(
        "demo-data",
        out,
        "--n",
        4,
        "--seed",
        1,
        "--outlier-rate",
        0.5,
        "--workers",
        1,
        "--no-progress",
    )
    assert result.exit_code == 0, result.output
    rows = _truth(out)
    assert tuple(rows[0]) == PHANTOM_TRUTH_COLUMNS
    assert all(bool(r["mask_path"]) == (r["truth"] in {"spinal_hardware", "heart_valve", "pacemaker", "foreign_object", "external_cable"}) for r in rows)
    assert [r["source_path"] for r in rows] == [f"scan_{i:04d}" for i in range(4)]
    assert sum(r["truth"] != "inlier" for r in rows) == 2
    assert all(0.0 <= float(r["strength"]) <= 1.0 for r in rows)
    for row in rows:
        files = [p for p in (out / row["source_path"]).iterdir()]
        marker = json.loads((out / ".demo-data" / f"{row['source_path']}.json").read_text())
        assert len(files) == marker["files"] > 0
        assert marker["shape_zyx"][0] >= 30  # 10-14 cm at 2.5-3 mm slices
        ds = pydicom.dcmread(files[0], stop_before_pixels=True)
        assert ds.SeriesInstanceUID == row["series_uid"]
    mtimes = {p: p.stat().st_mtime_ns for p in (out / "scan_0002").iterdir()}
    marker = out / ".demo-data" / "scan_0003.json"  # as a run that died while writing leaves it:
    marker.write_text(
        json.dumps({"spec": json.loads(marker.read_text())["spec"], "complete": False})
    )
    sorted((out / "scan_0003").iterdir())[-1].unlink()

    again = _run(
        "demo-data",
        out,
        "--n",
        4,
        "--seed",
        1,
        "--outlier-rate",
        0.5,
        "--workers",
        1,
        "--no-progress",
    )
    assert "1 written, 3 already complete" in again.output
    rewritten = json.loads(marker.read_text())
    assert rewritten["complete"] and len(list((out / "scan_0003").iterdir())) == rewritten["files"]
    assert {p: p.stat().st_mtime_ns for p in (out / "scan_0002").iterdir()} == mtimes
    assert _truth(out) == rows

    smaller = _run(
        "demo-data",
        out,
        "--n",
        3,
        "--seed",
        1,
        "--outlier-rate",
        0.0,
        "--workers",
        1,
        "--no-progress",
    )
    assert smaller.exit_code == 0, smaller.output
    assert sorted(p.name for p in out.glob("scan_*")) == ["scan_0000", "scan_0001", "scan_0002"]
    assert len(_truth(out)) == 3


def test_demo_data_refuses_bad_options(tmp_path):
    result = _run("demo-data", tmp_path / "x", "--size", "huge")
    assert result.exit_code != 0 and "--size must be one of" in result.output
    assert not (tmp_path / "x").exists()
    for base in ([], ["--base", "real"]):  # a traceback (phantoms) until stop 56
        result = _run("demo-data", tmp_path / "x", "--n", "3", "--workers", "0", *base)
        assert result.exit_code == 2 and "--workers must be >= 1, not 0" in result.output, result.output
        assert not (tmp_path / "x").exists()


def test_demo_data_never_overwrites_a_folder_it_did_not_write(tmp_path):
    foreign = tmp_path / "scan_0000"
    foreign.mkdir()
    (foreign / "keep.dcm").write_bytes(b"someone else's data")
    with pytest.raises(FileExistsError, match="refusing to overwrite"):
        write_scan(tmp_path, ScanSpec(index=0, seed=0))
    assert (foreign / "keep.dcm").read_bytes() == b"someone else's data"


def test_written_series_open_in_pydicom_and_simpleitk_without_warnings(tmp_path, caplog, capfd):
    spec = ScanSpec(index=7, seed=3, reversed_order=True)
    record = write_scan(tmp_path, spec)
    phantom = render_spec(spec)
    folder = tmp_path / spec.source_path
    files = sorted(folder.iterdir())
    caplog.set_level(logging.WARNING, logger="pydicom")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        datasets = [pydicom.dcmread(f) for f in files]
        planes = {
            float(ds.ImagePositionPatient[2]): apply_rescale(ds.pixel_array, ds) for ds in datasets
        }
    assert not caplog.records
    by_z = np.stack([planes[z] for z in sorted(planes)])
    assert np.array_equal(by_z, phantom.hu)
    first = min(datasets, key=lambda ds: float(ds.ImagePositionPatient[2]))
    assert first.InstanceNumber == len(files)  # stored in reversed order
    assert str(first.PatientName).count("^") >= 1 and first.PatientID.startswith("PID")
    assert len(first.PatientBirthDate) == 8 and first.InstitutionName
    assert first.SeriesInstanceUID == record["series_uid"] == series_uid_for(spec)

    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    image = reader.Execute()
    assert "WARNING" not in capfd.readouterr().err
    assert np.array_equal(sitk.GetArrayFromImage(image), phantom.hu)
    assert image.GetSpacing() == pytest.approx(phantom.spacing_zyx_mm[::-1], abs=1e-4)


def _expected_at_3mm(phantom) -> np.ndarray:
    """The phantom resampled by scipy onto the grid ingest documents (centred on the bounds)."""
    spacing = np.array(phantom.spacing_zyx_mm[::-1])  # x, y, z
    n_in = np.array(phantom.hu.shape[::-1])
    extent = n_in * spacing
    size = np.maximum(1, np.rint(extent / 3.0)).astype(int)
    low = np.array(phantom.origin_xyz_mm) - spacing / 2
    origin = low + (extent - (size - 1) * 3.0) / 2
    axes = [
        (origin[a] + 3.0 * np.arange(size[a]) - phantom.origin_xyz_mm[a]) / spacing[a]
        for a in (2, 1, 0)
    ]
    grid = np.meshgrid(*axes, indexing="ij")
    return map_coordinates(phantom.hu.astype(np.float32), grid, order=1, cval=-1024.0)


def test_ingest_round_trip_reproduces_the_phantom(tmp_path, settings):
    source = tmp_path / "cohort"
    specs = [
        ScanSpec(index=0, seed=4, reversed_order=True),
        ScanSpec(index=1, seed=4, truth="wrong_rescale", strength=0.1),
        ScanSpec(index=2, seed=4, truth="missing_slab", strength=0.1),
        ScanSpec(index=3, seed=4, truth="missing_slab", strength=0.9),
    ]
    for spec in specs:
        write_scan(source, spec)
    result = _run(
        "ingest",
        source,
        "--catalog",
        settings.catalog_path,
        "--store",
        settings.store_dir,
        "--workers",
        1,
        "--no-progress",
    )
    assert result.exit_code == 0, result.output
    with connect(settings.catalog_path) as con:
        scans = scans_table(con).set_index("source_path")
        errors = list_ingest_errors(con)
    assert sorted(scans.index) == ["scan_0000", "scan_0001", "scan_0002"]
    assert Counter(errors["reason"]) == Counter({"missing_slices": 1})  # the obvious slab

    phantoms = {spec.source_path: render_spec(spec) for spec in specs[:3]}
    stored = load_volume(scans.loc["scan_0000", "volume_path"], mmap=False).astype(np.float32)
    expected = _expected_at_3mm(phantoms["scan_0000"])
    assert stored.shape == expected.shape
    difference = np.abs(stored - np.maximum(expected, -1024.0))
    assert difference.mean() < 1.0 and np.percentile(difference, 99.9) <= 2.0

    shifted = load_volume(scans.loc["scan_0001", "volume_path"], mmap=False).astype(np.float32)
    expected = _expected_at_3mm(phantoms["scan_0001"])
    offset = phantoms["scan_0001"].effects.intercept_offset_hu
    body = expected + min(offset, 0.0) > -1000
    assert np.median(shifted[body] - expected[body]) == pytest.approx(offset, abs=1.0)
    assert int(scans.loc["scan_0002", "missing_slices"]) == 1


def test_a_phantom_object_mask_lands_on_the_stored_metal(tmp_path, settings):
    from ctae_core.io.mask_files import mask_on_stored_grid

    source = tmp_path / "cohort"
    spec = ScanSpec(index=0, seed=4, truth="pacemaker", strength=0.8)
    write_scan(source, spec)
    result = _run("ingest", source, "--catalog", settings.catalog_path, "--store",
                  settings.store_dir, "--workers", 1, "--no-progress")
    assert result.exit_code == 0, result.output
    with connect(settings.catalog_path) as con:
        scan = scans_table(con).iloc[0]
    stored = load_volume(scan["volume_path"], mmap=False)
    mask = mask_on_stored_grid(source / ".masks" / "scan_0000.nii.gz", float(scan["spacing_mm"]))
    assert mask.shape == stored.shape and 0 < mask.sum() < 0.01 * mask.size
    metal = stored > 2000  # the can and leads at 3 mm, streaks aside
    assert (mask & metal).sum() >= 0.8 * metal.sum()


def test_real_anatomy_cohort_keeps_the_kernel_and_masks_every_local_object(tmp_path, settings):
    from ctae_core.io.dicom_series import read_dicom_series
    from ctae_core.io.mask_files import read_mask
    from ctae_core.real_cohort import LOCAL_TYPES
    from jobs.demo_data_real import SHARED_DATA

    base = SHARED_DATA / "real-ct" / "totalseg-example"
    if not base.is_dir():
        pytest.skip(f"real CT data not found at {base}; it is present in CI")
    out = tmp_path / "real"
    result = _run("demo-data", out, "--base", base, "--n", 8, "--seed", 3, "--outlier-rate", 0.5,
                  "--workers", 1, "--no-progress")
    assert result.exit_code == 0, result.output
    rows = _truth(out)
    assert len(rows) == 8 and sum(r["truth"] != "inlier" for r in rows) == 4
    assert {r["base"].split("/")[-1] for r in rows} <= {"example_ct.nii.gz", "example_ct_sm.nii.gz",
                                                        "example_ct_dicom"}
    for row in rows:
        files = sorted(str(p) for p in (out / row["source_path"]).iterdir())
        volume, facts = read_dicom_series(files, row["source_path"])
        if row["base"].endswith("example_ct_dicom"):
            assert (facts.manufacturer, facts.kernel) == ("SIEMENS", "Br38f\\3")  # kept
        assert bool(row["mask_path"]) == (row["truth"] in LOCAL_TYPES)
        if row["mask_path"]:
            mask, spacing, origin = read_mask(out / row["mask_path"])
            assert mask.shape == volume.shape and mask.any()
            assert np.allclose(spacing, volume.spacing_zyx_mm, atol=1e-3)
            assert np.allclose(origin, volume.origin_xyz_mm, atol=1e-2)
            assert volume.hu[mask].max() > 1000  # the object lies where its mask says
    # the masks are ground truth, not scans: ingest passes their hidden folder over
    result = _run("ingest", out, "--catalog", settings.catalog_path, "--store", settings.store_dir,
                  "--workers", 1, "--no-progress")
    assert result.exit_code == 0, result.output
    with connect(settings.catalog_path, read_only=True) as con:
        assert len(scans_table(con)) == 8
        assert list_ingest_errors(con).empty


def test_a_base_folder_with_no_chest_or_abdomen_says_what_it_found(tmp_path):
    import shutil
    import zipfile

    from jobs.demo_data_real import SHARED_DATA

    runner = CliRunner()
    zipped = tmp_path / "zipped"
    zipped.mkdir()
    with zipfile.ZipFile(zipped / "series.zip", "w") as archive:
        archive.writestr("ct/IM0001.dcm", b"not read")
    result = runner.invoke(app, ["demo-data", str(tmp_path / "out"), "--base", str(zipped), "--n", "4"])
    assert result.exit_code == 2
    assert ("a real-anatomy cohort needs at least one chest or abdomen volume as a base; found no "
            "CT series or volume there") in " ".join(result.output.split())
    head = tmp_path / "head"
    head.mkdir()
    shutil.copy(SHARED_DATA / "real-ct-anatomy/openkbp-head-neck/openkbp_pt_6_train.nii.gz", head)
    result = runner.invoke(app, ["demo-data", str(tmp_path / "out"), "--base", str(head), "--n", "4"])
    assert result.exit_code == 2
    assert ("found 1 CT volume(s), none a chest or abdomen: head/openkbp_pt_6_train.nii.gz "
            "(head_neck)") in " ".join(result.output.split())
    assert not (tmp_path / "out").exists()  # until stop 55 the message named nothing found
