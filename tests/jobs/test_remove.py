"""`ctae remove`: scans leave the catalog with every run's rows and their stored files, on a real
DuckDB catalog and real DICOM; labels and export snapshots stay, and a stopped removal is
finished by the same command."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ctae_core.io.path_map import path_map_file, read_path_map
from data_catalog import CatalogSettings, connect
from data_catalog.removal import RUN_TABLES
from jobs.cli import app
from jobs.ingest import run_ingest
from jobs.synthetic_catalog import SyntheticSpec, build_synthetic_catalog
from tests.dicom_factory import SeriesHeaderSpec, phantom, write_phantom

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def _ctae(settings: CatalogSettings, *args: str, code: int = 0) -> str:
    result = runner.invoke(app, ["remove", *args, "--catalog", str(settings.catalog_path),
                                 "--store", str(settings.store_dir)])
    assert result.exit_code == code, result.output
    return " ".join(result.output.split())


def _rows(settings: CatalogSettings, scan_ids: list[str]) -> dict[str, int]:
    with connect(settings.catalog_path, read_only=True) as con:
        return {table: con.execute(f"SELECT count(*) FROM {table} WHERE scan_id IN "
                                   "(SELECT unnest(?::VARCHAR[]))", [scan_ids]).fetchone()[0]
                for table in ("scans", *RUN_TABLES, "labels", "removed_scans")}


@pytest.fixture
def scored(settings) -> CatalogSettings:
    """12 scans, each with its own stored volume, reconstruction and |error|; a run with
    splits, scores, embeddings and two reviewers' labels."""
    build_synthetic_catalog(settings, SyntheticSpec(n_scans=12, n_volume_files=12))
    return settings


def _labelled(settings: CatalogSettings) -> list[str]:
    with connect(settings.catalog_path, read_only=True) as con:
        return [r[0] for r in con.execute("SELECT DISTINCT scan_id FROM labels ORDER BY 1").fetchall()]


def test_named_scans_leave_with_their_rows_and_files_and_keep_labels_and_snapshots(scored, tmp_path):
    gone = _labelled(scored)[:1] + ["syn0000004"]
    files = [p for p in scored.store_dir.rglob("*.npy") if p.stem in gone]
    assert len(files) == 6  # a volume, a reconstruction and an |error| each
    before = _rows(scored, gone)
    assert before["scans"] == 2 and before["scores"] == 2 and before["labels"] >= 1
    listed = tmp_path / "all.csv"
    exported = runner.invoke(app, ["export", "--run", "synthetic", "--out", str(listed), "--who",
                                   "hal", "--catalog", str(scored.catalog_path)])
    assert exported.exit_code == 0, exported.output

    said = _ctae(scored, *gone, "--dry-run")
    assert said.startswith("2 scan(s) to remove (2 named): ")
    assert "rows that go: splits 2, scores 2, scan_failures 0, embeddings 2" in said
    assert "files that go: 6 (" in said and "1 export snapshot(s) that listed them" in said
    assert said.endswith("dry run: nothing removed") and _rows(scored, gone) == before
    refused = _ctae(scored, *gone, code=2)  # not at a terminal: nothing without --yes
    assert "nothing removed: run it again with --yes" in refused and _rows(scored, gone) == before

    said = _ctae(scored, *gone, "--yes")
    assert f"removed 2 scan(s) from the catalog and 6 file(s) from the store; kept {before['labels']} " \
           "label(s) and 1 export snapshot(s)" in said
    after = _rows(scored, gone)
    assert after == {**dict.fromkeys(("scans", *RUN_TABLES), 0), "labels": before["labels"],
                     "removed_scans": 2}
    assert not any(f.exists() for f in files)
    assert len(list(scored.store_dir.rglob("*.npy"))) == 30  # the other 10 scans' files stay
    with connect(scored.catalog_path, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM scans").fetchone()[0] == 10
        assert sorted(con.execute("SELECT scan_id, reason FROM removed_scans").fetchall()) == \
            sorted((i, "named") for i in gone)
        (job,), = con.execute("SELECT counts_json FROM job_runs WHERE job = 'remove'").fetchall()
        assert '"removed": 2' in job
        export_id = con.execute("SELECT export_id FROM exports").fetchone()[0]
    again = tmp_path / "again.csv"  # the snapshot that listed them is still written byte for byte
    recreated = runner.invoke(app, ["export", "--recreate", export_id, "--out", str(again),
                                    "--catalog", str(scored.catalog_path)])
    assert recreated.exit_code == 0, recreated.output
    assert again.read_bytes() == listed.read_bytes()
    fresh = tmp_path / "now.csv"
    runner.invoke(app, ["export", "--run", "synthetic", "--out", str(fresh), "--who", "hal",
                        "--catalog", str(scored.catalog_path)])
    assert len(fresh.read_text().splitlines()) == 1 + 10 and not any(
        i in fresh.read_text() for i in gone)


def test_an_unknown_id_or_no_choice_is_refused_and_removes_nothing(scored):
    said = _ctae(scored, "syn0000001", "nope", "--yes", code=2)
    assert "ctae remove: not in the catalog: nope (1 of the 2 scan ids given)" in said
    assert "say which scans to remove" in _ctae(scored, code=2)
    assert "not both" in _ctae(scored, "syn0000001", "--gone", code=2)
    assert _rows(scored, ["syn0000001"])["scans"] == 1


def _archive(root: Path) -> None:
    for i, name in enumerate(("p1", "p2", "p3")):
        write_phantom(root / name / "ct", phantom(seed=3 + i),
                      header=SeriesHeaderSpec(series_uid=f"1.2.826.7{i}"))


def _places(settings: CatalogSettings) -> list[tuple[str, str]]:
    with connect(settings.catalog_path, read_only=True) as con:
        return con.execute("SELECT source_root, source_path FROM scans ORDER BY 2").fetchall()


def test_gone_removes_deleted_series_and_not_an_archive_that_is_not_there(tmp_path, settings):
    archive = tmp_path / "disk" / "archive"
    _archive(archive)
    run_ingest([archive], settings, workers=1, progress=False)
    assert len(list(settings.volumes_dir.iterdir())) == 3
    shutil.rmtree(archive / "p2")
    summary = run_ingest([archive], settings, workers=1, progress=False)
    assert summary.gone == 1 and "`ctae remove --gone` takes them out" in "\n".join(summary.lines())

    said = _ctae(settings, "--gone", "--yes")
    assert said.startswith("1 scan(s) to remove (1 gone): ") and f"{archive}/p2/ct" in said
    assert _places(settings) == [(str(archive), "p1/ct"), (str(archive), "p3/ct")]
    assert len(list(settings.volumes_dir.iterdir())) == 2
    assert run_ingest([archive], settings, workers=1, progress=False).gone == 0
    assert _ctae(settings, "--gone") == "nothing to remove: no scan of the catalog is gone"

    # the whole archive not there (a disk not mounted, an archive moved): not gone by itself
    shutil.move(archive, tmp_path / "elsewhere")
    said = _ctae(settings, "--gone", "--yes")
    assert f"not counted as gone: 2 scan(s) under {archive}, none of which is there" in said
    assert said.endswith("nothing to remove: no scan of the catalog is gone")
    assert len(_places(settings)) == 2
    archive.mkdir()  # an empty mount point where the disk is not mounted: the same
    said = _ctae(settings, "--gone", "--yes")
    assert f"not counted as gone: 2 scan(s) under {archive}, none of which is there" in said
    assert len(_places(settings)) == 2
    said = _ctae(settings, "--gone", "--under", str(archive / "p3"), "--yes")  # named: it goes
    assert said.startswith("1 scan(s) to remove (1 gone): ")
    assert _places(settings) == [(str(archive), "p1/ct")]


def test_under_removes_every_scan_below_a_folder_and_keeps_it_out_of_a_redacted_catalog(tmp_path, settings):
    # a patient's consent withdrawn, in a catalog that holds no paths (--redact-paths)
    archive = tmp_path / "archive"
    _archive(archive)
    run_ingest([archive], settings, workers=1, progress=False, redact_paths=True)
    links = read_path_map(path_map_file(settings.store_dir))
    assert len(links) == 3 and not any(str(tmp_path) in r for r, _ in _places(settings))
    said = _ctae(settings, "--under", str(archive / "p1"), "--yes")
    assert said.startswith("1 scan(s) to remove (1 under): ") and f"{archive}/p1/ct" in said
    assert len(_places(settings)) == 2 and len(list(settings.volumes_dir.iterdir())) == 2
    with connect(settings.catalog_path, read_only=True) as con:  # the folder given is no path there
        (args,), = con.execute("SELECT args_json FROM job_runs WHERE job = 'remove'").fetchall()
    assert str(tmp_path) not in args and '"under": ["redacted:' in args
    # its link stays in the owner-only map: until stop 59 it went, and the catalog then knew the
    # removed input by its id alone, so a wider or narrower folder read it again
    assert read_path_map(path_map_file(settings.store_dir)) == links
    for given in (tmp_path, archive / "p1"):
        again = run_ingest([given], settings, workers=1, progress=False, redact_paths=True)
        assert (again.kept_out, again.ingested) == (1, 0), given
    # a scan removed as gone may come back (a backup restored): its link goes
    shutil.move(archive / "p2", tmp_path / "backup")
    _ctae(settings, "--gone", "--under", str(archive), "--yes")
    left = read_path_map(path_map_file(settings.store_dir))
    assert {k.source_path for k in left.values()} == {"p1/ct", "p3/ct"}


def test_a_removal_stopped_before_its_rows_is_finished_by_the_same_command(scored, monkeypatch):
    import jobs.remove

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt  # Ctrl+C after the files went, before the rows

    monkeypatch.setattr(jobs.remove, "remove_scans", stopped)
    said = _ctae(scored, "syn0000002", "--yes", code=130)
    assert "ctae remove: interrupted (Ctrl+C)" in said
    assert _rows(scored, ["syn0000002"])["scans"] == 1
    assert not list(scored.store_dir.rglob("syn0000002.npy"))  # its files went first
    monkeypatch.undo()
    said = _ctae(scored, "syn0000002", "--yes")
    assert "removed 1 scan(s) from the catalog and 0 file(s) from the store" in said
    assert _rows(scored, ["syn0000002"])["scans"] == 0


HOLD_A_JOB = """
import sys
from data_catalog.settings import CatalogSettings
from jobs.runtime import job_run

settings = CatalogSettings.resolve(sys.argv[1], sys.argv[2], env={})
with job_run(settings, sys.argv[3], {"run_id": "synthetic"}):  # the job's own record
    print("started", flush=True)
    sys.stdin.read()  # until the test closes the pipe
"""


@pytest.mark.parametrize("held", ["score", "remove"])
def test_scans_do_not_leave_while_another_job_runs_nor_a_job_start_during_a_removal(scored, held):
    holder = subprocess.Popen([sys.executable, "-c", HOLD_A_JOB, str(scored.catalog_path),
                               str(scored.store_dir), held], cwd=ROOT, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "started"
        said = _ctae(scored, "syn0000003", "--yes", code=2)
        assert said.startswith(f"ctae remove: the catalog is in use: `ctae {held}` has been "
                               f"running in process {holder.pid} since ")
        assert _rows(scored, ["syn0000003"])["scans"] == 1
        if held == "remove":  # and the other way round: no job starts while scans leave
            (scored.store_dir.parent / "new").mkdir()
            ingest = runner.invoke(app, ["ingest", str(scored.store_dir.parent / "new"), "--catalog",
                                         str(scored.catalog_path), "--no-progress"])
            assert ingest.exit_code == 2, ingest.output
            assert "the catalog is in use: `ctae remove` has been running" in ingest.output
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    assert "removed 1 scan(s)" in _ctae(scored, "syn0000003", "--yes")


def test_copies_removes_every_copy_but_the_first_of_a_series_stored_twice(tmp_path, settings):
    import SimpleITK as sitk

    archive = tmp_path / "archive"
    _archive(archive)
    for name in ("a.nii.gz", "b.nii.gz", "c.nii.gz"):  # one volume file, copied beside itself
        sitk.WriteImage(sitk.GetImageFromArray(phantom((20, 30, 30), seed=5)), str(archive / name))
    summary = run_ingest([archive], settings, workers=1, progress=False)
    assert (summary.ingested, summary.duplicates) == (6, 3)
    assert _ctae(settings, "--copies", "--under", str(archive / "p1")) == \
        "nothing to remove: no scan of the catalog is a copy of another below " + str(archive / "p1")
    said = _ctae(settings, "--copies", "--yes")
    assert said.startswith("2 scan(s) to remove (2 copy): ")
    assert f"{archive}/b.nii.gz" in said and f"{archive}/c.nii.gz" in said
    assert _places(settings) == [(str(archive), p) for p in ("a.nii.gz", "p1/ct", "p2/ct", "p3/ct")]
    assert len(list(settings.volumes_dir.iterdir())) == 4
    with connect(settings.catalog_path, read_only=True) as con:
        assert con.execute("SELECT DISTINCT reason FROM removed_scans").fetchall() == [("copy",)]


def test_a_run_whose_validation_scans_were_removed_keeps_its_t_until_its_scores_are_rewritten(scored):
    # removing validation scans can leave a run too few to fit T; until stop 58 a scoring that
    # then rewrote the scores kept the earlier T beside flags it never set, and `ctae evaluate`
    # said a scoring was still running
    from ctae_core.thresholds import ThresholdRule
    from data_catalog.scores import read_run
    from jobs.score import apply_threshold
    from jobs.score_options import ScoreOptions

    with connect(scored.catalog_path, read_only=True) as con:
        val = [r[0] for r in con.execute("SELECT scan_id FROM splits WHERE run_id = 'synthetic' "
                                         "AND split = 'val' ORDER BY scan_id").fetchall()]
        threshold = read_run(con, "synthetic")["threshold"]
    assert len(val) >= 2 and threshold is not None
    _ctae(scored, *val[1:], "--yes")
    options = ScoreOptions(run_id="synthetic", rule=ThresholdRule("mean_std"), score="mse_m")
    assert apply_threshold(scored, options)["threshold"] is None  # one validation scan left
    with connect(scored.catalog_path) as con:  # nothing rescored: T still describes the scores
        assert read_run(con, "synthetic")["threshold"] == threshold
        assert con.execute("SELECT count(*) FROM scores WHERE is_outlier IS NULL").fetchone()[0] == 0
        con.execute("UPDATE scores SET is_outlier = NULL WHERE scan_id IN (SELECT scan_id FROM "
                    "scores ORDER BY scan_id LIMIT 4)")  # what a scoring leaves until T is set
    assert apply_threshold(scored, options)["threshold"] is None
    with connect(scored.catalog_path, read_only=True) as con:
        assert read_run(con, "synthetic")["threshold"] is None
        assert con.execute("SELECT count(*), count(is_outlier) FROM scores").fetchone() == (12 - len(val) + 1, 0)


def test_a_bundle_that_listed_a_removed_scan_is_refused_by_name(scored, tmp_path):
    base = ["--catalog", str(scored.catalog_path)]
    made = runner.invoke(app, ["export", "--run", "synthetic", "--format", "nifti", "--out",
                               str(tmp_path / "bundle"), "--who", "hal", *base])
    assert made.exit_code == 0, made.output
    _ctae(scored, "syn0000002", "--yes")
    with connect(scored.catalog_path, read_only=True) as con:
        export_id = con.execute("SELECT export_id FROM exports").fetchone()[0]
    again = runner.invoke(app, ["export", "--recreate", export_id, "--out", str(tmp_path / "again"), *base])
    said = " ".join(again.output.split())
    assert again.exit_code == 2 and (f"export {export_id} lists 1 scan(s) removed from the catalog "
                                     "since (`ctae remove`; e.g. syn0000002)") in said
    assert "`ctae export --run synthetic --format nifti` with its filters" in said
    assert not (tmp_path / "again").exists()


@pytest.mark.parametrize("workers", [1, 2])  # 2: forked workers discover and ingest the folders
def test_ingest_keeps_removed_inputs_out_until_readmitted_and_brings_gone_ones_back(tmp_path, settings, workers):
    # until stop 58's keep-out, a scan removed by folder (a patient's consent withdrawn) came
    # back with the next routine ingest of the archive, its files being still there
    archive = tmp_path / "archive"
    _archive(archive)
    run_ingest([archive], settings, workers=workers, progress=False)
    said = _ctae(settings, "--under", str(archive / "p1"), "--yes")
    assert "`ctae ingest` keeps the inputs of the scans removed by id, folder or as a copy" in said
    for given in (archive, tmp_path, archive / "p1"):  # the same, a wider and a narrower folder
        again = run_ingest([given], settings, workers=workers, progress=False)
        assert (again.kept_out, again.ingested) == (1, 0), given
        assert "1 of them were taken out of the catalog by `ctae remove`" in "\n".join(again.lines())
        assert _places(settings) == [(str(archive), "p2/ct"), (str(archive), "p3/ct")]
        assert len(list(settings.volumes_dir.iterdir())) == 2  # nothing stored for it meanwhile
    back = run_ingest([archive], settings, workers=workers, progress=False, readmit=True)
    assert (back.kept_out, back.ingested) == (0, 1) and len(_places(settings)) == 3
    assert run_ingest([archive], settings, workers=workers, progress=False).skipped_unchanged == 3

    # a scan whose files were gone comes back when they do (a backup restored)
    shutil.move(archive / "p2", tmp_path / "backup")
    _ctae(settings, "--gone", "--yes")
    shutil.move(tmp_path / "backup", archive / "p2")
    restored = run_ingest([archive], settings, workers=workers, progress=False)
    assert (restored.kept_out, restored.ingested) == (0, 1) and len(_places(settings)) == 3


@pytest.mark.parametrize("workers", [1, 2])
def test_a_removed_series_stays_out_when_its_archive_moves(tmp_path, settings, workers):
    # until stop 59 a patient removed for a withdrawn consent came back under new ids once the
    # archive moved to a new disk: the keep-out knew the removed scan by id and place only
    archive = tmp_path / "old" / "archive"
    _archive(archive)
    run_ingest([archive], settings, workers=workers, progress=False)
    _ctae(settings, "--under", str(archive / "p1"), "--yes")
    moved = tmp_path / "new" / "archive"
    shutil.move(tmp_path / "old", tmp_path / "new")
    again = run_ingest([moved], settings, workers=workers, progress=False)
    assert (again.kept_out, again.moved, again.ingested) == (1, 2, 0)
    assert _places(settings) == [(str(moved), "p2/ct"), (str(moved), "p3/ct")]
    assert len(list(settings.volumes_dir.iterdir())) == 2
    # a copy of the series beside its removed place, which is still there, is a scan of its own
    shutil.copytree(moved / "p1", tmp_path / "copy" / "p1")
    shutil.move(tmp_path / "new", tmp_path / "old")
    copy = run_ingest([tmp_path / "copy"], settings, workers=workers, progress=False)
    assert (copy.kept_out, copy.ingested) == (0, 1)


def test_files_another_catalog_beside_reads_are_kept(scored, tmp_path, monkeypatch):
    # until stop 59 a catalog copied beside the first (`cp catalog.duckdb trial.duckdb`: the
    # same default store) deleted, on `ctae remove`, the stored files the first one still read
    import jobs.remove as remove_job
    from tests.data_catalog.test_review_journal import hold_catalog

    trial = CatalogSettings(scored.catalog_path.with_name("trial.duckdb"), scored.store_dir)
    shutil.copy(scored.catalog_path, trial.catalog_path)
    (scored.catalog_path.parent / "notes.duckdb").write_bytes(b"not a catalog")  # passed over
    volume = scored.volumes_dir / "syn0000002.npy"
    said = _ctae(trial, "syn0000002", "--yes")
    assert "removed 1 scan(s) from the catalog and 0 file(s) from the store" in said
    assert "kept 3 stored file(s) another catalog beside this one reads" in said  # volume, recon, |error|
    assert volume.exists() and _rows(trial, ["syn0000002"])["scans"] == 0
    said = _ctae(trial, "--run", "synthetic", "--yes")
    assert "removed run synthetic and 0 of its file(s); kept" in said
    assert scored.run_dir("synthetic").is_dir() and len(list(scored.run_dir("synthetic").rglob("*.npy"))) == 24
    # the first catalog locked by its own job: whether it reads them is not known, so all stay
    monkeypatch.setattr(remove_job, "BESIDE_WAIT_S", 0.3)
    holder = hold_catalog(scored.catalog_path)
    try:
        said = _ctae(trial, "syn0000003", "--yes")
    finally:
        holder.communicate("\n")
    assert "kept 1 stored file(s)" in said and (scored.volumes_dir / "syn0000003.npy").exists()
    # once nothing else reads them, they go
    trial.catalog_path.unlink()
    said = _ctae(scored, "syn0000004", "--yes")
    assert "removed 1 scan(s) from the catalog and 3 file(s) from the store" in said
    assert not (scored.volumes_dir / "syn0000004.npy").exists()


def test_a_run_leaves_with_its_rows_and_folder_and_the_scans_stay(scored, tmp_path):
    from data_catalog.journal import open_journal
    from data_catalog.sessions import create_session, set_session_status

    listed = tmp_path / "all.csv"
    runner.invoke(app, ["export", "--run", "synthetic", "--out", str(listed), "--who", "hal",
                        "--catalog", str(scored.catalog_path)])
    with open_journal(scored.catalog_path) as j:
        sid = create_session(j, name="flagged", created_by="ada", run_id="synthetic", source="test",
                             reads_per_scan=1, show_others=False, show_model=True,
                             queues={"bea": ["syn0000001"]})
    said = _ctae(scored, "--run", "synthetic", "--yes", code=2)
    assert "run 'synthetic' is read by open review session(s) 'flagged'" in said
    with open_journal(scored.catalog_path) as j:
        set_session_status(j, sid, "closed", "ada")
    assert "not in" in _ctae(scored, "--run", "nope", code=2)
    assert "in a command of their own" in _ctae(scored, "--run", "synthetic", "--gone", code=2)
    said = _ctae(scored, "--run", "synthetic", "--dry-run")
    assert said.startswith("run synthetic to remove: rows that go: splits 12, scores 12, "
                           "scan_failures 0, embeddings 12, train_history ")
    assert said.endswith("dry run: nothing removed") and scored.run_dir("synthetic").is_dir()

    with connect(scored.catalog_path, read_only=True) as con:
        labels = con.execute("SELECT count(*) FROM labels WHERE run_id = 'synthetic'").fetchone()[0]
    assert labels > 0
    said = _ctae(scored, "--run", "synthetic", "--yes")
    assert said.endswith("removed run synthetic and 24 of its file(s), with its folder in the "
                         f"store; kept {labels} label(s) and 1 export snapshot(s)")  # recon + |error|
    assert not scored.run_dir("synthetic").exists()
    with connect(scored.catalog_path, read_only=True) as con:
        for table in ("runs", *RUN_TABLES, "train_history", "evaluations", "evaluation_bases"):
            assert con.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0, table
        assert con.execute("SELECT count(*) FROM scans").fetchone()[0] == 12
        assert con.execute("SELECT count(*) FROM labels").fetchone()[0] > 0
        export_id = con.execute("SELECT export_id FROM exports").fetchone()[0]
    assert len(list(scored.volumes_dir.iterdir())) == 12  # the scans' own volumes stay
    again = tmp_path / "again.csv"
    recreated = runner.invoke(app, ["export", "--recreate", export_id, "--out", str(again),
                                    "--catalog", str(scored.catalog_path)])
    assert recreated.exit_code == 0 and again.read_bytes() == listed.read_bytes()
