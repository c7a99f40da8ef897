"""`ctae ingest` end to end on synthetic inputs: catalog rows, store, re-runs, kills, privacy."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import SimpleITK as sitk
from typer.testing import CliRunner

import jobs.ingest as ingest_job
from ctae_core.io.dicom_writer import SeriesHeaderSpec
from ctae_core.io.sources import discover_sources
from ctae_core.io.volume_store import load_volume
from data_catalog import connect
from data_catalog.job_runs import recent_job_runs
from data_catalog.scans import list_ingest_errors, scan_counts, scans_table
from data_catalog.settings import CatalogSettings
from jobs.cli import app
from jobs.ingest import run_ingest
from tests.dicom_factory import (
    IDENTIFYING,
    IDENTIFYING_EXTRA,
    identifying_header,
    phantom,
    write_junk,
    write_phantom,
)


@pytest.fixture
def source_tree(tmp_path):
    """Two CT series (one in a nested folder, no suffixes), an MR series, a NIfTI, junk."""
    root = tmp_path / "in"
    write_phantom(root / "p1" / "ct", header=SeriesHeaderSpec(series_uid="1.2.826.1"))
    write_phantom(
        root / "p2" / "deep" / "ct",
        phantom(seed=2),
        file_suffix="",
        shuffle_names=True,
        header=SeriesHeaderSpec(series_uid="1.2.826.2", manufacturer="SIEMENS", kernel="B30f"),
    )
    write_phantom(
        root / "p3" / "mr", header=SeriesHeaderSpec(series_uid="1.2.826.3", modality="MR")
    )
    image = sitk.GetImageFromArray(phantom((20, 30, 30), seed=5))
    image.SetSpacing((1.5, 1.5, 2.0))
    sitk.WriteImage(image, str(root / "vol.nii.gz"))
    write_junk(root / "p1")
    return root


def _invoke(*args):
    return CliRunner().invoke(app, ["ingest", *map(str, args), "--no-progress"])


def test_ingest_writes_scans_errors_and_store_then_skips_unchanged(source_tree, settings):
    result = _invoke(
        source_tree,
        "--catalog",
        settings.catalog_path,
        "--store",
        settings.store_dir,
        "--workers",
        "1",
    )
    assert result.exit_code == 0, result.output
    assert "ingested 3, skipped 0 unchanged, failed 1" in result.output
    assert "failed 1 × not_ct" in result.output
    with connect(settings.catalog_path, read_only=True) as con:
        scans = scans_table(con).set_index("source_path")
        errors = list_ingest_errors(con)
    assert sorted(scans.index) == ["p1/ct", "p2/deep/ct", "vol.nii.gz"]
    assert list(errors["reason"]) == ["not_ct"] and errors["source_path"][0] == "p3/mr"
    ct = scans.loc["p2/deep/ct"]
    assert (ct.manufacturer, ct.kernel, ct.series_uid) == ("SIEMENS", "B30f", "1.2.826.2")
    assert (ct.orig_size_z, ct.orig_size_y, ct.orig_size_x) == (24, 32, 32)
    # 24 × 2.5 mm = 60 mm and 32 × 0.8 mm = 25.6 mm at 3 mm -> 20 × 9 × 9 voxels
    assert (ct.size_z, ct.size_y, ct.size_x, ct.pixel_count) == (20, 9, 9, 1620)
    stored = load_volume(ct.volume_path)
    assert stored.dtype == np.int16 and stored.shape == (20, 9, 9)
    assert ct.body_voxels == int((stored > -990).sum()) and ct.hu_min >= -1024
    assert sum(ct.hu_histogram) == ct.pixel_count
    assert ct.volume_path == str(settings.volumes_dir / f"{ct.scan_id}.npy")

    again = _invoke(source_tree, "--catalog", settings.catalog_path, "--workers", "1")
    assert "ingested 0, skipped 3 unchanged" in again.output and again.exit_code == 0

    changed = source_tree / "p1" / "ct" / "IM00003.dcm"
    os.utime(changed, ns=(changed.stat().st_atime_ns, changed.stat().st_mtime_ns + 10**9))
    third = run_ingest([source_tree], settings, workers=1, progress=False)
    assert (third.ingested, third.skipped_unchanged) == (1, 2)
    with connect(settings.catalog_path, read_only=True) as con:
        assert scan_counts(con)["scans"] == 3


def test_process_pool_gives_the_same_rows_as_inline(source_tree, settings, tmp_path):
    inline = run_ingest([source_tree], settings, workers=1, progress=False)
    other = type(settings).resolve(tmp_path / "pool.duckdb", tmp_path / "pool-store", env={})
    pooled = run_ingest([source_tree], other, workers=2, progress=False)
    assert (inline.ingested, pooled.ingested) == (3, 3)
    with (
        connect(settings.catalog_path, read_only=True) as a,
        connect(other.catalog_path, read_only=True) as b,
    ):
        left, right = scans_table(a), scans_table(b)
    assert list(left["scan_id"]) == list(right["scan_id"])
    assert list(left["content_hash"]) == list(right["content_hash"])


def test_a_run_killed_between_batches_is_completed_without_duplicates(
    source_tree, settings, monkeypatch
):
    monkeypatch.setattr(ingest_job, "BATCH_SIZE", 1)
    real_flush = ingest_job._Writes.flush
    calls = []

    def flush_then_die(writes, batch, last=False):
        real_flush(writes, batch, last)
        calls.append(len(batch))
        if len(calls) == 2:
            raise KeyboardInterrupt  # as if the job were killed after its second write

    monkeypatch.setattr(ingest_job._Writes, "flush", flush_then_die)
    with pytest.raises(KeyboardInterrupt):
        run_ingest([source_tree], settings, workers=1, progress=False)
    monkeypatch.setattr(ingest_job._Writes, "flush", real_flush)
    with connect(settings.catalog_path, read_only=True) as con:
        partial = scan_counts(con)
    assert partial["scans"] + partial["ingest_errors"] == 2
    rerun = run_ingest([source_tree], settings, workers=1, progress=False)
    assert rerun.skipped_unchanged == partial["scans"]
    with connect(settings.catalog_path, read_only=True) as con:
        final = scan_counts(con)
        ids = scans_table(con)["scan_id"]
    assert final["scans"] == 3 and final["ingest_errors"] == 1 and ids.is_unique
    assert sorted(p.name for p in settings.volumes_dir.iterdir()) == sorted(f"{i}.npy" for i in ids)


def test_identifying_values_reach_neither_catalog_nor_store(tmp_path, settings):
    uid = "1.2.826.0.1.3680043.99.4242"
    write_phantom(tmp_path / "in" / "s1", header=identifying_header(series_uid=uid))
    summary = run_ingest([tmp_path / "in"], settings, workers=1, progress=False)
    assert summary.ingested == 1
    with connect(settings.catalog_path, read_only=True) as con:
        tables = [scans_table(con), list_ingest_errors(con), recent_job_runs(con)]
    scan_id, series_uid = tables[0].loc[0, ["scan_id", "series_uid"]]
    assert series_uid == uid and uid not in scan_id and "4242" not in scan_id
    # Every text value of the tables, as DuckDB returns it (immune to on-disk compression).
    texts = " | ".join(str(v) for df in tables for col in df.columns for v in df[col].tolist())
    blobs = [settings.catalog_path.read_bytes()]
    blobs += [p.read_bytes() for p in settings.store_dir.rglob("*") if p.is_file()]
    wal = settings.catalog_path.with_name(settings.catalog_path.name + ".wal")
    blobs += [wal.read_bytes()] if wal.exists() else []
    values = list(IDENTIFYING.values()) + list(IDENTIFYING_EXTRA.values())
    for value in values:
        for part in {value, value.replace("^", " "), *value.split("^")}:
            if len(part) >= 4:
                assert part not in texts, f"{part!r} leaked into the catalog"
                assert not any(part.encode() in blob for blob in blobs), f"{part!r} leaked"


def test_exit_codes_nothing_ingestible_missing_source_and_unwritable_catalog(tmp_path, settings):
    bad = tmp_path / "bad"
    write_phantom(bad, header=SeriesHeaderSpec(modality="MR"))
    result = _invoke(bad, "--catalog", settings.catalog_path)
    assert result.exit_code == 1 and "ctae ingest: nothing could be ingested" in result.output
    missing = _invoke(tmp_path / "nope", "--catalog", settings.catalog_path)  # bad input: 2
    assert missing.exit_code == 2 and "ctae ingest:" in missing.output
    assert "does not exist" in missing.output
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the catalog folder should be")
    unwritable = _invoke(bad, "--catalog", blocker / "catalog.duckdb")
    assert unwritable.exit_code == 2
    assert f"{blocker / 'catalog.duckdb'} lies below a file, {blocker}; give a path in a folder" in (
        " ".join(unwritable.output.split()))
    for target, option in ((blocker / "cohort", "OUT"), (blocker, "OUT")):  # until stop 55:
        made = CliRunner().invoke(app, ["demo-data", str(target), "--n", "2"])  # a traceback
        assert made.exit_code == 2 and f"Invalid value for {option}: {target} " in made.output
    store = _invoke(bad, "--catalog", settings.catalog_path, "--store", blocker / "store")
    assert store.exit_code == 2 and f"{blocker / 'store'} lies below a file" in store.output


def test_a_mistyped_first_source_leaves_no_empty_catalog_behind(tmp_path, settings):
    fresh = tmp_path / "new" / "catalog.duckdb"
    missing = _invoke(tmp_path / "nope", "--catalog", fresh)
    assert missing.exit_code == 2
    assert f"{tmp_path / 'nope'}: source folder does not exist; check the path (no catalog was " \
        f"created at {fresh})" in " ".join(missing.output.split())
    assert not fresh.exists() and not fresh.parent.exists()
    write_phantom(tmp_path / "in")
    assert _invoke(tmp_path / "in", "--catalog", fresh).exit_code == 0
    again = _invoke(tmp_path / "nope", "--catalog", fresh)  # into a catalog: recorded as failed
    assert again.exit_code == 2 and "no catalog was created" not in again.output
    with connect(fresh, read_only=True) as con:
        assert con.execute("SELECT job, status FROM job_runs ORDER BY started_at").fetchall() == [
            ("ingest", "done"), ("ingest", "failed")]


def test_discovery_reports_every_file_it_looks_at_before_any_input_is_read(tmp_path, settings):
    slices = write_phantom(tmp_path / "in" / "ct")
    write_junk(tmp_path / "in" / "ct")  # a DICOMDIR, notes and a thumbnail: looked at too
    (tmp_path / "in" / ".hidden").write_text("never looked at")
    seen: list[int] = []
    found = discover_sources([tmp_path / "in"], on_file=seen.append)
    assert seen == [1] * (len(slices) + 3)
    assert len(found.sources) == 1 and found.skipped_files == {"dicom_directory": 1, "not_dicom": 2}
    result = CliRunner().invoke(
        app, ["ingest", str(tmp_path / "in"), "--catalog", str(settings.catalog_path)]
    )
    assert result.exit_code == 0, result.output
    assert "discover: 27file" in result.output  # 24 slices and the three other files


def _rows(settings) -> list[tuple]:
    with connect(settings.catalog_path, read_only=True) as con:
        scans = scans_table(con).sort_values("scan_id")
        errors = list_ingest_errors(con).sort_values("source_path")
    keep = ["scan_id", "source_path", "content_hash", "orig_size_z", "missing_slices", "warnings"]
    return [tuple(r) for r in scans[keep].itertuples(index=False)] + [
        tuple(r) for r in errors[["source_path", "source_path", "reason"]].itertuples(index=False)
    ]


def test_workers_that_discover_find_a_series_split_over_two_folders_as_one(tmp_path):
    # each forked worker discovers a folder and ingests what it found there at once; a series
    # whose files lie in two folders is seen in two pieces, so the tree is discovered again
    # in the parent: the rows are those of one process, and no piece's volume is left behind
    root = tmp_path / "in"
    write_phantom(root / "a", header=SeriesHeaderSpec(series_uid="1.2.826.11"))
    write_phantom(root / "b", phantom(seed=3), header=SeriesHeaderSpec(series_uid="1.2.826.12"))
    files = write_phantom(root / "split" / "1", phantom(seed=4),
                          header=SeriesHeaderSpec(series_uid="1.2.826.13"))
    (root / "split" / "2").mkdir()
    for path in files[::2]:
        path.rename(root / "split" / "2" / path.name)
    write_junk(root / "b")
    (root / "b" / "broken.dcm").write_bytes(b"not a dicom file at all")
    settings = {}
    for name, workers in (("inline", 1), ("pool", 2)):
        settings[name] = CatalogSettings.resolve(tmp_path / f"{name}.duckdb", tmp_path / name, env={})
        summary = run_ingest([root], settings[name], workers=workers, progress=False)
        assert (summary.found, summary.ingested, sum(summary.failed.values())) == (3, 3, 1)
    assert _rows(settings["pool"]) == _rows(settings["inline"])
    assert sorted(r[1] for r in _rows(settings["pool"])[:3]) == ["a", "b", "split"]
    ids = {r[0] for r in _rows(settings["pool"])[:3]}
    assert {p.stem for p in settings["pool"].volumes_dir.iterdir()} == ids
    again = run_ingest([root], settings["pool"], workers=2, progress=False)
    assert (again.ingested, again.skipped_unchanged) == (0, 3)


def test_workers_that_discover_keep_their_work_when_one_dies(tmp_path, monkeypatch):
    # a worker killed while reading one folder's series: the other folders' scans are kept,
    # the tree is discovered again here, and the killing series is tried the usual way
    import jobs.ingest_worker as worker_module

    root = tmp_path / "in"
    for k, name in enumerate(("a", "crash", "c")):
        write_phantom(root / name, phantom(seed=k), header=SeriesHeaderSpec(series_uid=f"1.2.9.{k}"))
    real = worker_module._ingest

    def dies_on_crash(source, *args):
        if source.source_path == "crash":
            os._exit(3)  # as a decoder's segfault would end the worker
        return real(source, *args)

    monkeypatch.setattr(worker_module, "_ingest", dies_on_crash)
    settings = CatalogSettings.resolve(tmp_path / "c.duckdb", tmp_path / "store", env={})
    summary = run_ingest([root], settings, workers=2, progress=False)
    assert (summary.found, summary.ingested, dict(summary.failed)) == (3, 2, {"worker_died": 1})
    rows = _rows(settings)
    assert sorted(r[1] for r in rows[:2]) == ["a", "c"] and rows[2][1:] == ("crash", "worker_died")
    assert {p.stem for p in settings.volumes_dir.iterdir()} == {r[0] for r in rows[:2]}


def test_a_store_out_of_room_fails_the_scans_that_do_not_fit_and_says_where(source_tree, settings, monkeypatch):
    from ctae_core.io import volume_store

    real_save = np.save

    def save(handle, array, allow_pickle=False):  # the disk fills on the largest volume
        if array.size > 2000:
            handle.write(b"\x93NUMPY" + b"\0" * 1018)
            raise OSError(f"{array.nbytes} requested and 1024 written")
        real_save(handle, array, allow_pickle=allow_pickle)

    monkeypatch.setattr(volume_store.np, "save", save)
    summary = run_ingest([source_tree], settings, workers=1, progress=False)
    # the two CT phantoms (20 × 9 × 9 at 3 mm) fit, the NIfTI (13 × 15 × 15) does not
    assert (summary.ingested, dict(summary.failed)) == (2, {"not_ct": 1, "store_write": 1})
    with connect(settings.catalog_path, read_only=True) as con:
        errors = list_ingest_errors(con).set_index("source_path")
    assert errors.loc["p3/mr", "reason"] == "not_ct"
    assert errors.loc["vol.nii.gz", "reason"] == "store_write"
    message = errors.loc["vol.nii.gz", "message"]
    assert message.startswith(f"vol.nii.gz: its volume {settings.volumes_dir}/")
    assert "could not be written (" in message and "MB free on its disk" in message
    assert not [p.name for p in settings.volumes_dir.iterdir() if p.name.startswith(".")]  # no temp file


def test_a_source_given_twice_or_inside_another_is_read_once(tmp_path, settings, caplog):
    root = tmp_path / "archive"
    write_phantom(root / "a", header=SeriesHeaderSpec(series_uid="1.2.826.91"))
    write_phantom(root / "b" / "ct", header=SeriesHeaderSpec(series_uid="1.2.826.92"))
    # until stop 55: the catalog's duplicate-key error, and nothing ingested
    result = _invoke(root, root / "b", root, root / "b" / "ct", "--catalog", settings.catalog_path)
    assert result.exit_code == 0, result.output
    assert "found 2 input(s): ingested 2, skipped 0 unchanged, failed 0" in result.output
    said = caplog.text
    assert f"source {root / 'b'} is inside {root}, given too" in said
    assert f"source {root} is the same as {root}, given too" in said
    with connect(settings.catalog_path, read_only=True) as con:
        rows = con.execute("SELECT source_root, source_path FROM scans ORDER BY 2").fetchall()
    assert rows == [(str(root), "a"), (str(root), "b/ct")]  # as `ctae ingest archive` alone


@pytest.mark.parametrize("workers", [1, 2])  # 2: forked workers discover and ingest the folders
def test_an_input_found_again_under_a_wider_or_narrower_folder_stays_one_scan(tmp_path, workers):
    # until stop 56: `ctae ingest archive` after `ctae ingest archive/batch1` stored every
    # batch1 series again under a new id (two cohort members of one scan), and the refusals
    # under both folders were listed twice
    root = tmp_path / "archive"
    write_phantom(root / "batch1" / "a", header=SeriesHeaderSpec(series_uid="1.2.826.71"))
    image = sitk.GetImageFromArray(phantom((20, 30, 30), seed=5))
    sitk.WriteImage(image, str(root / "batch1" / "vol.nii.gz"))
    (root / "batch1" / "broken.dcm").write_bytes(b"not a dicom file at all")
    write_phantom(root / "batch2" / "b", phantom(seed=3), header=SeriesHeaderSpec(series_uid="1.2.826.72"))
    settings = CatalogSettings.resolve(tmp_path / "c.duckdb", tmp_path / "store", env={})

    def scans() -> list[tuple]:
        with connect(settings.catalog_path, read_only=True) as con:
            return con.execute("SELECT source_root, source_path FROM scans ORDER BY 2").fetchall()

    def errors() -> list[tuple]:
        with connect(settings.catalog_path, read_only=True) as con:
            return con.execute("SELECT source_root, source_path FROM ingest_errors").fetchall()

    first = run_ingest([root / "batch1"], settings, workers=workers, progress=False)
    assert (first.ingested, first.found_before) == (2, 0)
    before = scans()
    wider = run_ingest([root], settings, workers=workers, progress=False)
    assert (wider.found, wider.ingested, wider.skipped_unchanged, wider.found_before) == (3, 1, 2, 2)
    assert scans() == sorted(before + [(str(root), "batch2/b")], key=lambda row: row[1])
    assert errors() == [(str(root), "batch1/broken.dcm")]  # the wider walk's, once
    assert len(list(settings.volumes_dir.iterdir())) == 3

    # the other way round, in another catalog, with an input that changed since: it is read
    # again into the scan it is
    settings = CatalogSettings.resolve(tmp_path / "d.duckdb", tmp_path / "store_d", env={})
    run_ingest([root], settings, workers=workers, progress=False)
    before = scans()
    os.utime(root / "batch1" / "vol.nii.gz", ns=(1, 1))
    narrower = run_ingest([root / "batch1"], settings, workers=workers, progress=False)
    assert (narrower.found, narrower.ingested, narrower.found_before) == (2, 1, 2)
    assert scans() == before == [(str(root), "batch1/a"), (str(root), "batch1/vol.nii.gz"),
                                 (str(root), "batch2/b")]
    assert errors() == [(str(root / "batch1"), "broken.dcm")]
    assert len(list(settings.volumes_dir.iterdir())) == 3
    assert "2 of them ingested before from another source folder" in "\n".join(narrower.lines())


def test_a_file_given_alone_leaves_the_refusals_of_the_files_beside_it(tmp_path, settings):
    # until stop 56 a file given alone forgot every refusal of its folder: the folder was
    # taken for what had been looked through
    root = tmp_path / "in"
    write_phantom(root / "a", header=SeriesHeaderSpec(series_uid="1.2.826.81"))
    (root / "broken.dcm").write_bytes(b"not a dicom file at all")
    image = sitk.GetImageFromArray(phantom((20, 30, 30), seed=5))
    sitk.WriteImage(image, str(root / "vol.nii.gz"))
    run_ingest([root], settings, workers=1, progress=False)
    run_ingest([root / "vol.nii.gz"], settings, workers=1, progress=False)
    with connect(settings.catalog_path, read_only=True) as con:
        assert con.execute("SELECT source_path FROM ingest_errors").fetchall() == [("broken.dcm",)]
        assert con.execute("SELECT count(*) FROM scans").fetchone()[0] == 2


def test_a_series_split_over_two_sources_given_points_at_their_common_folder(tmp_path, settings, caplog):
    # each part is read alone and refused for its missing slices; until stop 56 nothing said
    # where the other part was
    root = tmp_path / "in"
    files = write_phantom(root / "a", phantom(seed=4), header=SeriesHeaderSpec(series_uid="1.2.826.55"))
    (root / "b").mkdir()
    for path in files[::2]:
        path.rename(root / "b" / path.name)
    apart = run_ingest([root / "a", root / "b"], settings, workers=1, progress=False)
    assert (apart.ingested, dict(apart.failed)) == (0, {"missing_slices": 2})
    assert (f"series 1.2.826.55 has files under {root / 'a'} and {root / 'b'}, given as separate "
            "sources: each is read as an input of its own; if they are parts of one series, give "
            f"their common folder {root} as one source to read it whole") in caplog.text
    whole = run_ingest([root], settings, workers=1, progress=False)
    assert (whole.ingested, dict(whole.failed)) == (1, {})
    with connect(settings.catalog_path, read_only=True) as con:
        assert list_ingest_errors(con).empty  # the parts' refusals lie inside what was walked


@pytest.mark.parametrize("workers", [1, 2])  # 2: forked workers discover and ingest the folders
def test_an_archive_that_moved_is_found_again_as_the_scans_it_was(tmp_path, workers):
    # until stop 57: an archive ingested, then moved (a disk mounted elsewhere, a folder renamed)
    # and ingested from its new place, was stored again under new ids: every scan twice, the old
    # rows naming files that no longer exist, the old refusals listed beside the new ones
    import shutil

    old = tmp_path / "disk1" / "archive"
    write_phantom(old / "p1" / "ct", header=SeriesHeaderSpec(series_uid="1.2.826.81"))
    write_phantom(old / "p2" / "ct", phantom(seed=3), header=SeriesHeaderSpec(series_uid="1.2.826.82"))
    sitk.WriteImage(sitk.GetImageFromArray(phantom((20, 30, 30), seed=5)), str(old / "p3.nii.gz"))
    (old / "broken.dcm").write_bytes(b"not a dicom file at all")
    settings = CatalogSettings.resolve(tmp_path / "c.duckdb", tmp_path / "store", env={})

    def scans() -> list[tuple]:
        with connect(settings.catalog_path, read_only=True) as con:
            return con.execute("SELECT scan_id, source_root, source_path, content_hash FROM scans "
                               "ORDER BY source_path").fetchall()

    def errors() -> list[tuple]:
        with connect(settings.catalog_path, read_only=True) as con:
            return con.execute("SELECT source_root, source_path FROM ingest_errors").fetchall()

    first = run_ingest([old], settings, workers=workers, progress=False)
    assert (first.ingested, first.moved) == (3, 0)
    before = scans()
    volumes = sorted(settings.volumes_dir.iterdir())

    new = tmp_path / "disk2" / "data" / "archive"
    new.parent.mkdir(parents=True)
    shutil.move(old, new)
    moved = run_ingest([new], settings, workers=workers, progress=False)
    assert (moved.found, moved.ingested, moved.skipped_unchanged, moved.moved) == (3, 0, 3, 3)
    assert scans() == [(i, str(new), path, h) for i, _, path, h in before]
    assert errors() == [(str(new), "broken.dcm")]  # the gone folder's refusal is gone
    assert sorted(settings.volumes_dir.iterdir()) == volumes
    assert "3 of them moved since they were ingested" in "\n".join(moved.lines())
    again = run_ingest([new], settings, workers=workers, progress=False)
    assert (again.ingested, again.skipped_unchanged, again.moved) == (0, 3, 0)

    # moved once more and given from the folder above, one series copied with new file times
    # (`cp -r`): the series is the same (its UID), read again into its scan; the volume file
    # with its old times is matched by its path's tail
    third = tmp_path / "disk3"
    shutil.move(new, third / "archive") if third.mkdir() is None else None
    for dicom in (third / "archive" / "p2" / "ct").iterdir():
        os.utime(dicom, ns=(10**18, 10**18))
    wider = run_ingest([third], settings, workers=workers, progress=False)
    assert (wider.found, wider.ingested, wider.skipped_unchanged, wider.moved) == (3, 1, 2, 3)
    assert scans() == [(i, str(third), f"archive/{path}", h) for i, _, path, h in before]
    assert sorted(settings.volumes_dir.iterdir()) == volumes


def test_a_copy_whose_original_is_still_there_is_a_scan_of_its_own(tmp_path, settings):
    import shutil

    original = tmp_path / "a" / "archive"
    write_phantom(original / "ct", header=SeriesHeaderSpec(series_uid="1.2.826.91"))
    run_ingest([original], settings, workers=1, progress=False)
    shutil.copytree(original, tmp_path / "b" / "archive")
    copy = run_ingest([tmp_path / "b" / "archive"], settings, workers=1, progress=False)
    assert (copy.ingested, copy.moved) == (1, 0)  # both are on disk: two scans, as before


def test_redacted_scans_are_known_again_under_a_wider_folder_and_after_a_move(tmp_path):
    # until stop 57 the catalog of `--redact-paths` held only pseudonyms, so neither rule above
    # could match its scans: both stored them again; the owner's path map now gives the places
    import shutil

    from ctae_core.io.path_map import path_map_file, read_path_map

    old = tmp_path / "disk1" / "Doeberg"
    write_phantom(old / "batch1" / "ct", header=SeriesHeaderSpec(series_uid="1.2.826.95"))
    sitk.WriteImage(sitk.GetImageFromArray(phantom((20, 30, 30), seed=5)),
                    str(old / "batch1" / "vol.nii.gz"))
    settings = CatalogSettings.resolve(tmp_path / "c.duckdb", tmp_path / "store", env={})

    def rows() -> list[tuple]:
        with connect(settings.catalog_path, read_only=True) as con:
            return con.execute("SELECT scan_id, source_root, source_path FROM scans "
                               "ORDER BY scan_id").fetchall()

    first = run_ingest([old / "batch1"], settings, workers=1, progress=False, redact_paths=True)
    wider = run_ingest([old], settings, workers=1, progress=False, redact_paths=True)
    assert (first.ingested, wider.ingested, wider.skipped_unchanged, wider.found_before) == (2, 0, 2, 2)
    ids = [row[0] for row in rows()]
    assert len(ids) == 2

    new = tmp_path / "disk2" / "Doeberg"
    new.parent.mkdir()
    shutil.move(old, new)
    moved = run_ingest([new], settings, workers=1, progress=False, redact_paths=True)
    assert (moved.ingested, moved.skipped_unchanged, moved.moved) == (0, 2, 2)
    assert [row[0] for row in rows()] == ids
    assert not any("Doeberg" in value or "disk" in value for row in rows() for value in row)
    links = read_path_map(path_map_file(settings.store_dir))
    assert {links[i].source_root for i in ids} == {str(new)}


def test_a_stored_volume_that_was_damaged_is_stored_again_by_the_next_ingest(source_tree, settings):
    # until stop 57 an unchanged input whose volume was cut short (a disk error, a copy that
    # stopped) was skipped as long as the file existed: nothing could mend it
    first = run_ingest([source_tree], settings, workers=1, progress=False)
    volumes = sorted(settings.volumes_dir.iterdir())
    whole = volumes[0].read_bytes()
    volumes[0].write_bytes(whole[: len(whole) // 2])
    again = run_ingest([source_tree], settings, workers=1, progress=False)
    assert (again.ingested, again.skipped_unchanged) == (1, first.ingested - 1)
    assert volumes[0].read_bytes() == whole


def test_a_moved_series_found_in_two_new_places_is_its_scan_once_and_a_new_scan_once(tmp_path, settings):
    import shutil

    old = tmp_path / "old" / "archive"
    write_phantom(old / "ct", header=SeriesHeaderSpec(series_uid="1.2.826.97"))
    run_ingest([old], settings, workers=1, progress=False)
    with connect(settings.catalog_path, read_only=True) as con:
        (scan_id,) = con.execute("SELECT scan_id FROM scans").fetchone()
    shutil.copytree(old, tmp_path / "a" / "archive")
    shutil.move(old, tmp_path / "b" / "archive")
    for copy in ("a", "b"):  # both read again: each would store its series under the one id
        for dicom in (tmp_path / copy / "archive" / "ct").iterdir():
            os.utime(dicom, ns=(10**18, 10**18))
    both = run_ingest([tmp_path / "a", tmp_path / "b"], settings, workers=1, progress=False)
    assert (both.ingested, both.moved) == (2, 1)
    with connect(settings.catalog_path, read_only=True) as con:
        rows = con.execute("SELECT scan_id, source_root FROM scans ORDER BY source_root").fetchall()
    assert len(rows) == 2 and rows[0] == (scan_id, str(tmp_path / "a"))


def test_scans_whose_files_were_deleted_are_named_by_the_next_ingest(source_tree, settings):
    # until stop 57 a series deleted from the archive (say, a broken one) and the archive
    # ingested again said nothing: the scan stayed in the catalog and in every run's training
    import shutil

    first = run_ingest([source_tree], settings, workers=1, progress=False)
    shutil.rmtree(source_tree / "p2")
    again = run_ingest([source_tree], settings, workers=1, progress=False)
    assert (again.found, again.skipped_unchanged, again.gone) == (first.found - 1, first.ingested - 1, 1)
    assert "1 scan(s) the catalog holds under these folders were not found" in "\n".join(again.lines())
    with connect(settings.catalog_path, read_only=True) as con:
        assert scan_counts(con)["scans"] == first.ingested  # kept, with its stored volume
    narrower = run_ingest([source_tree / "p1"], settings, workers=1, progress=False)
    assert narrower.gone == 0  # p2 lies outside what was walked


def test_a_series_stored_twice_is_counted_as_a_copy(tmp_path, settings):
    # a copy beside its original stays a scan of its own; until stop 57 nothing said so (a DICOM
    # copy under the same SOURCE is one series, its slices read once: not a copy)
    import shutil

    write_phantom(tmp_path / "in" / "study" / "ct", header=SeriesHeaderSpec(series_uid="1.2.826.98"))
    sitk.WriteImage(sitk.GetImageFromArray(phantom((20, 30, 30), seed=5)), str(tmp_path / "in" / "vol.nii.gz"))
    shutil.copy(tmp_path / "in" / "vol.nii.gz", tmp_path / "in" / "vol-again.nii.gz")
    result = _invoke(tmp_path / "in", "--catalog", settings.catalog_path, "--store", settings.store_dir)
    assert result.exit_code == 0, result.output
    assert ("2 scans of the catalog have the same voxels as another (1 group(s))"
            in " ".join(result.output.split()))
    with connect(settings.catalog_path, read_only=True) as con:
        copies = con.execute("SELECT source_path FROM scans WHERE content_hash IN (SELECT "
                             "content_hash FROM scans GROUP BY 1 HAVING count(*) > 1) ORDER BY 1")
        assert [r[0] for r in copies.fetchall()] == ["vol-again.nii.gz", "vol.nii.gz"]
        (counts,) = con.execute("SELECT counts_json FROM job_runs WHERE job = 'ingest'").fetchone()
    assert '"duplicates": 2' in counts
    shutil.copytree(tmp_path / "in" / "study", tmp_path / "elsewhere" / "study")  # another SOURCE
    both = run_ingest([tmp_path / "in", tmp_path / "elsewhere"], settings, workers=1, progress=False)
    assert (both.ingested, both.duplicates, both.duplicate_groups) == (1, 4, 2)


@pytest.mark.parametrize("workers", [1, 2])  # 2: forked workers list the folders themselves
def test_a_project_folder_holding_the_catalog_is_ingested_without_its_store(tmp_path, workers):
    project = tmp_path / "project"
    write_phantom(project / "scans" / "a", header=SeriesHeaderSpec(series_uid="1.2.826.71"))
    write_phantom(project / "scans" / "b", header=SeriesHeaderSpec(series_uid="1.2.826.72"))
    catalog = project / "ctae-data" / "catalog.duckdb"
    args = ["--catalog", catalog, "--workers", workers]
    first = _invoke(project / "scans", *args)
    assert first.exit_code == 0, first.output
    store = project / "ctae-data" / "store"
    assert len(list((store / "volumes").glob("*.npy"))) == 2
    # `ctae ingest .` in the project: until stop 59 every stored array was read as a file that
    # is not DICOM ("passed over 3 file(s): not_dicom" here; thousands in a used store)
    again = _invoke(project, *args)
    assert again.exit_code == 0, again.output
    assert "found 2 input(s): ingested 0, skipped 2 unchanged, failed 0" in again.output
    assert "passed over" not in again.output
    assert f"left out the catalog's own files: {catalog}, {store / 'volumes'}" in again.output
    with connect(catalog, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM ingest_errors").fetchone() == (0,)
    inside = _invoke(store / "volumes", *args)
    assert inside.exit_code == 2
    assert f"{store / 'volumes'} holds ctae's own stored arrays (the store's volumes/)" in inside.output
    # a store that is a general data folder with the scans below it: its own folders left out
    data = tmp_path / "data"
    shutil.copytree(project / "scans", data / "dicom")
    args = ["--catalog", data / "c.duckdb", "--store", data, "--workers", workers]
    assert "ingested 2" in _invoke(data / "dicom", *args).output
    again = _invoke(data, *args)
    assert again.exit_code == 0 and "skipped 2 unchanged" in again.output, again.output
    assert "passed over" not in again.output
    assert f"left out the catalog's own files: {data / 'c.duckdb'}, {data / 'volumes'}" in again.output
