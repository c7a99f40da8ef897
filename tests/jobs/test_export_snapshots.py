"""Export formats loaded by their consumers (MONAI, nibabel, SimpleITK), snapshots re-created
byte for byte from the catalog, and `ctae export --diff` naming why scans moved."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from typer.testing import CliRunner

from ctae_core.io.volume_store import load_volume
from data_catalog import connect
from data_catalog.review import add_label
from data_catalog.scores import set_threshold
from data_catalog.snapshots import LIST_COLUMNS, load_snapshot
from jobs.cli import app
from jobs.synthetic_catalog import SyntheticSpec, build_synthetic_catalog

runner = CliRunner()


@pytest.fixture
def catalog(settings):
    build_synthetic_catalog(settings, SyntheticSpec(n_scans=40, n_volume_files=3))
    return settings


def _ctae(catalog, *args):
    result = runner.invoke(app, ["export", "--catalog", str(catalog.catalog_path), *args])
    assert result.exit_code == 0, result.output
    return result


def _export(catalog, out, *args) -> str:
    _ctae(catalog, "--run", "synthetic", "--out", str(out), "--who", "hal", *args)
    return json.loads(_manifest(out).read_text())["export_id"]


def _manifest(out):
    return out / "manifest.json" if out.is_dir() else out.with_name(f"{out.name}.manifest.json")


def _files(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_csv_parquet_carry_the_reasons_and_recreate_byte_for_byte(catalog, tmp_path):
    ids = {fmt: _export(catalog, tmp_path / f"a.{fmt}", "--flag", "outlier") for fmt in ("csv", "parquet")}
    csv = pd.read_csv(tmp_path / "a.csv")
    parquet = pd.read_parquet(tmp_path / "a.parquet")
    assert list(csv.columns) == list(parquet.columns) == LIST_COLUMNS
    assert len(csv) == len(parquet) > 0 and csv["is_outlier"].all()
    # the synthetic run has no outlier score: the strongest evidence stays empty, the reviewers do not
    assert csv["reviewers"].str.contains("alice: ").any()
    assert csv["adjudication"].isna().all()  # the hook is empty until adjudication exists
    manifest = json.loads(_manifest(tmp_path / "a.csv").read_text())
    assert manifest["row_count"] == len(csv) and manifest["filter"]["flag"] == "outlier"
    assert manifest["threshold"]["rule"] and manifest["label_state"]["labels"] > 0
    for fmt, export_id in ids.items():
        out = tmp_path / "again" / f"a.{fmt}"
        _ctae(catalog, "--recreate", export_id[:24], "--out", str(out))
        assert out.read_bytes() == (tmp_path / f"a.{fmt}").read_bytes()
        assert _manifest(out).read_bytes() == _manifest(tmp_path / f"a.{fmt}").read_bytes()


def test_nifti_bundle_loads_in_nibabel_simpleitk_and_monai(catalog, tmp_path):
    monai_data = pytest.importorskip("monai.data")
    out = tmp_path / "bundle"
    export_id = _export(catalog, out, "--format", "nifti", "--split", "train", "--split", "val")
    with connect(catalog.catalog_path, read_only=True) as con:
        listed = load_snapshot(con, export_id).rows.query("included")
    files = pd.read_csv(out / "files.csv")
    assert list(files["scan_id"]) == list(listed["scan_id"]) and len(files) > 20
    first = files.iloc[0]
    stored = load_volume(first["volume_path"])
    image = nib.load(out / first["nifti"])
    assert image.shape == stored.shape[::-1] and np.array_equal(image.get_fdata(), stored.transpose(2, 1, 0))
    assert np.allclose(np.abs(np.diag(image.affine)[:3]), 3.0)
    itk = sitk.ReadImage(str(out / first["anomaly_map"]))
    anomaly = sitk.GetArrayFromImage(itk)
    assert anomaly.shape == tuple(n // 2 for n in stored.shape)  # the run's 6 mm grid
    assert np.allclose(itk.GetSpacing(), [6.0, 6.0, 6.0])
    training = monai_data.load_decathlon_datalist(out / "datalist.json", data_list_key="training")
    validation = monai_data.load_decathlon_datalist(out / "datalist.json", data_list_key="validation")
    assert len(training) + len(validation) == len(files)
    assert len(training) == (listed["split"] == "train").sum()
    from monai.transforms import LoadImage

    loaded = LoadImage(reader="NibabelReader", image_only=True)(training[0]["image"])
    assert tuple(loaded.shape) == image.shape
    again = tmp_path / "again"
    _ctae(catalog, "--recreate", export_id, "--out", str(again))
    assert _files(again) == _files(out)


def test_nnunet_dataset_json_lists_its_training_images(catalog, tmp_path):
    out = tmp_path / "nnunet"
    _export(catalog, out, "--format", "nnunet", "--exclude-outliers")
    dataset = json.loads((out / "dataset.json").read_text())
    assert dataset["channel_names"] == {"0": "CT"} and dataset["file_ending"] == ".nii.gz"
    training = sorted(p.name for p in (out / "imagesTr").iterdir())
    assert dataset["numTraining"] == len(training) == len(dataset["dataset"]) > 10
    for case, entry in dataset["dataset"].items():
        assert entry["images"] == [f"imagesTr/{case}_0000.nii.gz"]
        assert nib.load(out / entry["images"][0]).shape[2] > 1
    files = pd.read_csv(out / "files.csv")
    assert len(files) == len(training) + len(list((out / "imagesTs").glob("*.nii.gz")))


def test_monai_datalist_of_source_series(catalog, tmp_path):
    monai_data = pytest.importorskip("monai.data")
    _export(catalog, tmp_path / "list.json", "--format", "monai")
    test = monai_data.load_decathlon_datalist(tmp_path / "list.json", data_list_key="test")
    datalist = json.loads((tmp_path / "list.json").read_text())
    assert datalist["numTest"] == len(test) > 0
    assert all(item["image"].startswith("/data/synthetic/patient") for item in test)
    training = monai_data.load_decathlon_datalist(tmp_path / "list.json", data_list_key="training")
    assert len(training) == datalist["numTraining"] > len(test)


def test_diff_names_newly_flagged_and_relabelled_scans(catalog, tmp_path):
    a = _export(catalog, tmp_path / "a.csv", "--exclude-outliers")
    before = pd.read_csv(tmp_path / "a.csv")
    with connect(catalog.catalog_path) as con:
        scans = con.execute("SELECT scan_id, mse_m, is_outlier FROM scores WHERE run_id = "
                            "'synthetic' ORDER BY mse_m DESC").df()
        flagged = scans[scans["is_outlier"]]
        relabelled = flagged["scan_id"].iloc[0]
        for reviewer in ("alice", "bob"):
            add_label(con, scan_id=relabelled, reviewer=reviewer, verdict="inlier", run_id="synthetic")
        # lower T so that the first unflagged scan is newly flagged
        newly = scans[~scans["is_outlier"]].iloc[0]
        set_threshold(con, "synthetic", rule="manual", params={}, threshold=float(newly["mse_m"]) - 1e-9,
                      score="mse_m")
    b = _export(catalog, tmp_path / "b.csv", "--exclude-outliers")
    assert relabelled not in set(before["scan_id"]) and newly["scan_id"] in set(before["scan_id"])
    result = _ctae(catalog, "--diff", a, b, "--out", str(tmp_path / "diff.csv"))
    diff = pd.read_csv(tmp_path / "diff.csv").set_index("scan_id")
    assert diff.loc[relabelled, "change"] == "added"
    assert "relabelled" in diff.loc[relabelled, "reasons"] and "→ inlier" in diff.loc[relabelled, "reasons"]
    assert diff.loc[newly["scan_id"], "change"] == "removed"
    assert diff.loc[newly["scan_id"], "reasons"] == "newly flagged"
    assert "manifest differs in threshold" in result.output
    assert set(diff["change"]) <= {"added", "removed", "changed"}


def test_strongest_evidence_names_the_largest_z_and_leaves_unscored_rows_empty():
    from data_catalog.snapshots import EVIDENCE_COLUMNS, strongest_evidence

    rows = pd.DataFrame([dict.fromkeys(EVIDENCE_COLUMNS, np.nan) for _ in range(2)])
    rows.loc[0, ["mse_m_z", "shape_z", "noise_z"]] = [1.5, 7.25, -3.0]
    name, z = strongest_evidence(rows)
    assert name[0] == "shape_z" and z[0] == 7.25
    assert pd.isna(name[1]) and pd.isna(z[1])


def test_a_bundle_whose_stored_volume_is_gone_names_it_and_writes_and_logs_nothing(catalog, tmp_path):
    # until stop 56 a FileNotFoundError traceback (exit 1); the browser's export page showed
    # the same exception
    from dashboard.data import prepare_export
    from data_catalog.filters import ExportFilter

    with connect(catalog.catalog_path, read_only=True) as con:
        (volume,) = con.execute("SELECT volume_path FROM scans ORDER BY scan_id LIMIT 1").fetchone()
        logged = len(con.execute("SELECT * FROM exports").fetchall())
    Path(volume).unlink()
    result = runner.invoke(app, ["export", "--catalog", str(catalog.catalog_path), "--run", "synthetic",
                                 "--format", "nifti", "--out", str(tmp_path / "bundle")])
    said = " ".join(result.output.split())
    assert result.exit_code == 2, result.output
    assert said.startswith(f"ctae export: the nifti bundle holds every scan's stored volume: {volume}: "
                           "stored volume is missing; re-run the job that wrote it (ingest or score)")
    assert not (tmp_path / "bundle").exists() and not list(tmp_path.glob(".bundle*"))
    with pytest.raises(ValueError, match="the nnunet bundle holds every scan's stored volume: .*missing"):
        prepare_export(str(catalog.catalog_path), "synthetic", ExportFilter(), "nnunet", "hal")
    with connect(catalog.catalog_path, read_only=True) as con:
        assert len(con.execute("SELECT * FROM exports").fetchall()) == logged  # nothing logged


def test_a_clean_list_is_refused_while_scored_scans_have_no_flag(catalog, tmp_path):
    # a scoring writes each scan's score with no flag and flags every scan once T is fitted:
    # until stop 57 `--exclude-outliers` taken meanwhile (or after a scoring that stopped)
    # listed the flagged scans as clean
    from dashboard.data import prepare_export
    from data_catalog.filters import ExportFilter

    with connect(catalog.catalog_path) as con:
        flagged = [r[0] for r in con.execute(
            "SELECT scan_id FROM scores WHERE run_id = 'synthetic' AND is_outlier").fetchall()]
        con.execute("UPDATE scores SET is_outlier = NULL WHERE run_id = 'synthetic' "
                    "AND scan_id IN (SELECT scan_id FROM scores ORDER BY scan_id LIMIT 25)")
        logged = len(con.execute("SELECT * FROM exports").fetchall())
    assert flagged
    for args in (["--exclude-outliers"], ["--flag", "inlier"]):
        result = runner.invoke(app, ["export", "--catalog", str(catalog.catalog_path), "--run",
                                     "synthetic", "--out", str(tmp_path / "clean.csv"), *args])
        said = " ".join(result.output.split())
        assert result.exit_code == 2, result.output
        assert "25 of the 40 scored scans of run 'synthetic' have no flag yet" in said
        assert not (tmp_path / "clean.csv").exists()
    with pytest.raises(ValueError, match="have no flag yet"):
        prepare_export(str(catalog.catalog_path), "synthetic", ExportFilter(exclude_outliers=True),
                       "csv", "hal")
    _export(catalog, tmp_path / "all.csv")  # a list that reads no flag is still written
    with connect(catalog.catalog_path) as con:
        assert len(con.execute("SELECT * FROM exports").fetchall()) == logged + 1
        set_threshold(con, "synthetic", rule="mad", params={"k": 3.0}, threshold=0.9, score="mse_m")
    _export(catalog, tmp_path / "clean.csv", "--exclude-outliers")


def test_drop_copies_lists_one_scan_of_each_series_stored_twice(catalog, tmp_path):
    with connect(catalog.catalog_path) as con:
        group = [r[0] for r in con.execute(
            "SELECT scan_id FROM scans ORDER BY source_root DESC, source_path DESC LIMIT 3").fetchall()]
        con.execute("UPDATE scans SET content_hash = 'c0ffee' WHERE scan_id IN (SELECT unnest(?))",
                    [group])
        (first,) = con.execute("SELECT scan_id FROM scans WHERE content_hash = 'c0ffee' "
                               "ORDER BY source_root, source_path, scan_id LIMIT 1").fetchone()
    _export(catalog, tmp_path / "all.csv")
    _export(catalog, tmp_path / "once.csv", "--drop-copies")
    everything = pd.read_csv(tmp_path / "all.csv")["scan_id"].tolist()
    once = pd.read_csv(tmp_path / "once.csv")["scan_id"].tolist()
    assert len(everything) == 40 and set(everything) - set(once) == set(group) - {first}
    assert first in once and len(once) == 38
    manifest = json.loads(_manifest(tmp_path / "once.csv").read_text())
    assert manifest["filter"]["drop_copies"] is True
    _ctae(catalog, "--recreate", manifest["export_id"], "--out", str(tmp_path / "again.csv"))
    assert (tmp_path / "again.csv").read_bytes() == (tmp_path / "once.csv").read_bytes()
