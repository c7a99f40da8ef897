"""Hostile inputs: special files, unreadable files and folders, non-finite voxels, stalled reads.
None stops or hangs the job; every one that is not ingested is listed with a reason."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import time
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from ctae_core.io.dicom_writer import SeriesHeaderSpec
from data_catalog import CatalogSettings, connect
from data_catalog.scans import list_ingest_errors, scans_table
from jobs.ingest import run_ingest
from jobs.ingest_worker import InputTimeout, time_box
from tests.dicom_factory import phantom, write_phantom

REPO = Path(__file__).resolve().parents[2]
NO_OVERRIDE = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search"]
"""Run as root without the capabilities that read files of mode 000 (CI runs as root)."""


def _ctae(*args: str, timeout: float = 90, honour_permissions: bool = False):
    """`ctae ARGS` as its own process; ``honour_permissions``: even when running as root."""
    prefix = NO_OVERRIDE if honour_permissions and os.geteuid() == 0 else []
    return subprocess.run(
        [*prefix, sys.executable, "-m", "jobs", *args],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _rows(settings: CatalogSettings):
    with connect(settings.catalog_path, read_only=True) as con:
        return (
            scans_table(con),
            list_ingest_errors(con),
            con.execute("SELECT job, status FROM job_runs").fetchall(),
        )


def test_special_files_are_listed_never_opened_and_the_good_series_is_ingested(tmp_path):
    root = tmp_path / "in"
    write_phantom(root / "good", header=SeriesHeaderSpec(series_uid="1.2.826.77"))
    (root / "loop.nii.gz").symlink_to("loop.nii.gz")
    (root / "broken.nii.gz").symlink_to("missing.nii.gz")
    for name in ("pipe.dcm", "pipe.nii.gz", "pipe"):
        os.mkfifo(root / name)
    (root / "empty.dcm").touch()
    (root / "random.dcm").write_bytes(np.random.RandomState(1).bytes(700))
    (root / "notes.txt").write_text("not a scan, only counted\n")
    with zipfile.ZipFile(root / "download.zip", "w") as archive:  # a series as users share it
        for path in sorted((root / "good").iterdir()):
            archive.write(path, f"good/{path.name}")
    with tarfile.open(root / "more.tar.gz", "w:gz") as archive:
        archive.add(root / "good", "good")
    settings = CatalogSettings.resolve(tmp_path / "c.duckdb", tmp_path / "store", env={})
    start = time.monotonic()
    done = _ctae(
        "ingest",
        str(root),
        "--catalog",
        str(settings.catalog_path),
        "--store",
        str(settings.store_dir),
        "--workers",
        "2",
        "--no-progress",
    )
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - start < 60  # a FIFO opened for reading would block forever
    scans, errors, jobs = _rows(settings)
    assert list(scans["source_path"]) == ["good"]
    assert dict(zip(errors["source_path"], errors["reason"], strict=True)) == {
        "loop.nii.gz": "symlink_loop",
        "broken.nii.gz": "broken_link",
        "pipe.dcm": "not_a_regular_file",
        "pipe.nii.gz": "not_a_regular_file",
        "pipe": "not_a_regular_file",
        "empty.dcm": "empty_file",
        "random.dcm": "not_dicom",
        "download.zip": "archive",  # until stop 55 only counted among the files that are not DICOM
        "more.tar.gz": "archive",
    }
    assert "FIFO" in errors.set_index("source_path").loc["pipe", "message"]
    assert errors.set_index("source_path").loc["download.zip", "message"] == (
        "download.zip: an archive (.zip); ctae reads folders of files, not inside archives: unpack "
        "it (e.g. `unzip FILE -d FOLDER`, `tar -xf FILE -C FOLDER`) and ingest the folder")
    assert jobs == [("ingest", "done")]
    output = done.stdout + done.stderr
    assert "failed 3 × not_a_regular_file" in output and "failed 2 × archive" in output
    assert "passed over 1 file(s): not_dicom" in output  # notes.txt
    for text in (*errors["message"], output):  # relative paths only
        assert str(tmp_path) not in text


def test_unreadable_files_and_folders_are_listed_and_the_readable_rest_ingested(tmp_path):
    root = tmp_path / "in"
    locked = write_phantom(root / "all_locked", header=SeriesHeaderSpec(series_uid="1.2.826.81"))
    gap = write_phantom(
        root / "one_locked", phantom(seed=3), header=SeriesHeaderSpec(series_uid="1.2.826.82")
    )
    write_phantom(root / "secret" / "ct", header=SeriesHeaderSpec(series_uid="1.2.826.83"))
    image = sitk.GetImageFromArray(phantom((20, 30, 30), seed=5))
    sitk.WriteImage(image, str(root / "locked.nii.gz"))
    for path in (*locked, gap[11], root / "locked.nii.gz"):
        path.chmod(0o000)
    (root / "secret").chmod(0o000)
    settings = CatalogSettings.resolve(tmp_path / "c.duckdb", tmp_path / "store", env={})
    try:
        done = _ctae(
            "ingest",
            str(root),
            "--catalog",
            str(settings.catalog_path),
            "--store",
            str(settings.store_dir),
            "--workers",
            "1",
            "--no-progress",
            honour_permissions=True,
        )
    finally:
        (root / "secret").chmod(0o755)
    if os.geteuid() != 0 and os.access(locked[0], os.R_OK):
        pytest.skip("this user reads files of mode 000 (a capability): nothing is unreadable")
    assert done.returncode == 0, done.stderr
    scans, errors, _ = _rows(settings)
    assert list(scans["source_path"]) == ["one_locked"]
    (warnings,) = scans["warnings"]
    assert "1 missing slice(s) interpolated" in warnings
    assert "1 file(s) beside its slices were refused (see ingest_errors)" in warnings
    reasons = Counter(
        zip(errors["source_path"].map(lambda p: p.split("/")[0]), errors["reason"], strict=True)
    )
    assert reasons == Counter(
        {
            ("all_locked", "unreadable"): 24,
            ("one_locked", "unreadable"): 1,
            ("locked.nii.gz", "unreadable"): 1,
            ("secret", "unreadable_folder"): 1,
        }
    )
    assert set(errors["message"].str.contains("permission denied")) == {True}


def test_a_few_non_finite_voxels_are_repaired_and_counted_many_are_refused(tmp_path, settings):
    root = tmp_path / "in"
    root.mkdir()
    hu = phantom((20, 30, 30), seed=5).astype(np.float32)
    few = hu.copy()
    few[10, 15, 10:15] = [np.nan, np.nan, np.inf, -np.inf, np.nan]
    sitk.WriteImage(sitk.GetImageFromArray(few), str(root / "few.nii.gz"))
    sitk.WriteImage(sitk.GetImageFromArray(np.full_like(hu, np.nan)), str(root / "all.nii.gz"))
    summary = run_ingest([root], settings, workers=1, progress=False)
    assert (summary.ingested, dict(summary.failed)) == (1, {"non_finite": 1})
    scans, errors, _ = _rows(settings)
    assert list(scans["warnings"]) == ["5 NaN / infinite voxel(s) set to -1024 HU (air)"]
    assert np.isfinite(scans[["hu_min", "hu_max", "hu_mean"]].to_numpy()).all()
    assert "18,000 of 18,000 voxels are NaN or infinite" in errors["message"][0]


def test_an_absurd_size_is_blamed_on_the_header_or_on_the_spacing_asked_for(tmp_path):
    # until stop 56 both read "the header is damaged — export it again"
    root = tmp_path / "in"
    root.mkdir()
    image = sitk.GetImageFromArray(phantom((20, 30, 30), seed=5))
    image.SetSpacing((2.0, 2.0, 3.0))
    sitk.WriteImage(image, str(root / "sane.nii.gz"))
    damaged = sitk.GetImageFromArray(phantom((20, 30, 30), seed=6))
    damaged.SetSpacing((2e4, 2e4, 3.0))  # 600 m across
    sitk.WriteImage(damaged, str(root / "damaged.nii.gz"))
    fine = CatalogSettings.resolve(tmp_path / "a.duckdb", tmp_path / "a", env={})
    summary = run_ingest([root], fine, workers=1, progress=False)
    assert (summary.ingested, dict(summary.failed)) == (1, {"implausible_geometry": 1})
    message = _rows(fine)[1].set_index("source_path").loc["damaged.nii.gz", "message"]
    assert "voxel spacing (3.0, 20000.0, 20000.0) mm cannot be right" in message
    assert "the header is damaged" in message

    fine_grid = CatalogSettings.resolve(tmp_path / "b.duckdb", tmp_path / "b", env={})
    summary = run_ingest([root / "sane.nii.gz"], fine_grid, spacing=0.01, workers=1, progress=False)
    assert (summary.ingested, dict(summary.failed)) == (0, {"implausible_geometry": 1})
    message = _rows(fine_grid)[1]["message"][0]
    assert message.startswith("sane.nii.gz: at --spacing 0.01 mm this scan (60 × 60 × 60 mm) would "
                              "span 2.16e+11 voxels")
    assert "pass a coarser --spacing" in message and "header" not in message


def test_a_read_that_blocks_is_stopped_by_the_time_box(tmp_path):
    fifo = tmp_path / "stalled"
    os.mkfifo(fifo)
    start = time.monotonic()
    with pytest.raises(InputTimeout), time_box(0.5):
        open(fifo, "rb")  # blocks until a writer appears: none will  # noqa: SIM115
    assert 0.4 < time.monotonic() - start < 5


def test_a_catalog_this_user_may_not_write_is_named_as_such_not_as_no_catalog(tmp_path):
    # until stop 55: "cannot open this file as a catalog ... point --catalog at the catalog.duckdb
    # a ctae job wrote", about a good catalog on a read-only share
    shared = tmp_path / "share"
    catalog = shared / "catalog.duckdb"
    with connect(catalog):
        pass
    before = catalog.read_bytes()
    (tmp_path / "empty").mkdir()
    catalog.chmod(0o444)
    shared.chmod(0o555)
    try:
        for args in (["ingest", str(tmp_path / "empty"), "--catalog", str(catalog)],
                     ["ingest", str(tmp_path / "empty"), "--catalog", str(shared / "new.duckdb")]):
            done = _ctae(*args, honour_permissions=True)
            assert done.returncode == 2, done.stderr
            said = done.stderr.strip().splitlines()[-1]
            command, path = args[0], args[-1]
            assert said.startswith(f"ctae {command}: {path}: cannot be opened to write (")
            assert "Permission denied" in said and "run it where the file and its folder are writable" in said
        # a command that only reads goes on: a current catalog is opened read-only as it is
        for args in (["export", "--list", "--catalog", str(catalog)], ["status", "--catalog", str(catalog)]):
            done = _ctae(*args, honour_permissions=True)
            assert done.returncode == 0, done.stderr
        assert catalog.read_bytes() == before and sorted(p.name for p in shared.iterdir()) == ["catalog.duckdb"]
    finally:
        shared.chmod(0o755)
        catalog.chmod(0o644)
