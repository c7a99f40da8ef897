"""`ctae status` on real DuckDB catalogs: what it holds, how far each run got, the jobs running
(a live process and a dead one) and the next command; read-only."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from data_catalog import CatalogSettings, connect
from data_catalog.job_runs import start_job_run
from jobs.cli import app
from jobs.runtime import this_process
from jobs.synthetic_catalog import SyntheticSpec, build_synthetic_catalog

runner = CliRunner()


def _status(settings: CatalogSettings, *args: str, code: int = 0) -> str:
    result = runner.invoke(app, ["status", "--catalog", str(settings.catalog_path), *args])
    assert result.exit_code == code, result.output
    return result.output


def test_each_stage_names_the_command_that_comes_next(settings, tmp_path):
    unrun = CatalogSettings.resolve(tmp_path / "unrun" / "catalog.duckdb")
    build_synthetic_catalog(unrun, SyntheticSpec(n_scans=12, run_id=None, n_ingest_errors=2))
    said = _status(unrun)
    assert "scans: 12 (2 inputs refused by ingest: 1 " in said
    assert said.rstrip().endswith("next:\n  train a run on the scans: `ctae train --run NAME`")

    build_synthetic_catalog(settings, SyntheticSpec(n_scans=12, with_embeddings=False))
    with connect(settings.catalog_path) as con:
        con.execute("DELETE FROM scores WHERE scan_id = 'syn0000011'")
        (flagged,), = con.execute("SELECT count(*) FROM scores WHERE is_outlier").fetchall()
    status = json.loads(_status(settings, "--json"))
    (run,) = status["runs"]
    assert (run["run_id"], run["status"], run["scored"], run["flagged"], run["embedded"]) == (
        "synthetic", "trained", 11, flagged, 0)
    assert status["next"] == ["run synthetic: 1 of 12 scans not scored: `ctae score --run synthetic`"]
    line = next(li for li in _status(settings).splitlines() if li.lstrip().startswith("synthetic"))
    assert line.split()[:6] == ["synthetic", "synthetic", "trained", "30/—", "11", str(flagged)]  # its config names no epochs

    with connect(settings.catalog_path) as con:  # scored again, flags not yet set
        con.execute("INSERT INTO scores (run_id, scan_id, split, mse_m, outlier_score) "
                    "VALUES ('synthetic', 'syn0000011', 'train', 0.1, 1.0)")
    assert "1 scans have no flag: a `ctae score --run synthetic` is running" in _status(settings)
    with connect(settings.catalog_path) as con:
        con.execute("UPDATE scores SET is_outlier = false WHERE scan_id = 'syn0000011'")
    assert "`ctae embed --run synthetic`" in _status(settings)
    with connect(settings.catalog_path) as con:
        con.execute("UPDATE runs SET status = 'training', epochs_done = 4")
    assert "its training stopped at epoch 4 (training): `ctae train --run synthetic --resume`" in (
        _status(settings))


def test_running_jobs_are_told_apart_from_ones_whose_process_is_gone(settings):
    build_synthetic_catalog(settings, SyntheticSpec(n_scans=12))
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)
    with connect(settings.catalog_path) as con:
        start_job_run(con, "score", {"run_id": "synthetic"}, this_process())
        start_job_run(con, "ingest", {"sources": ["/data"]}, this_process(int(ended.stdout)))
    said = _status(settings)
    assert f"running: ctae score on run synthetic, pid {os.getpid()} on " in said
    assert "(running)" in said and "running: ctae ingest, pid " in said
    assert ("(gone: it stopped without recording its end, killed or its machine restarted; the "
            "same `ctae ingest` command again goes on from what it wrote)") in said
    assert "next:\n  run synthetic: score running" in said
    with connect(settings.catalog_path, read_only=True) as con:  # read-only: nothing was marked
        assert con.execute("SELECT count(*) FROM job_runs WHERE status = 'running'").fetchone() == (2,)


def test_a_job_on_another_machine_keeps_its_run_busy(settings):
    """A score running elsewhere cannot be checked from here, but *Next* must not suggest
    scoring the run a second time."""
    build_synthetic_catalog(settings, SyntheticSpec(n_scans=12))
    with connect(settings.catalog_path) as con:
        con.execute("DELETE FROM scores WHERE scan_id = 'syn0000011'")
        start_job_run(con, "score", {"run_id": "synthetic"},
                      dataclasses.replace(this_process(), host="gpu-node-7"))
    said = _status(settings)
    assert "running: ctae score on run synthetic, pid " in said and " on gpu-node-7 since " in said
    assert "(not checked: it runs on another machine; `ctae status` there tells)" in said
    assert json.loads(_status(settings, "--json"))["next"] == [
        "run synthetic: score running on another machine"]
    assert "ctae score --run synthetic`" not in said.split("next:")[1]



def test_a_killed_training_is_told_to_resume_not_to_start_again():
    from data_catalog.job_runs import how_to_go_on

    # `ctae train --run r` again refuses a run the catalog holds: only --resume goes on
    assert how_to_go_on("train", "r") == "`ctae train --run r --resume` goes on from its last finished epoch"
    assert how_to_go_on("score", "r") == "the same `ctae score` command again goes on from what it wrote"


def test_a_failed_job_is_listed_with_how_it_failed(settings):
    from jobs.job_errors import JobError
    from jobs.runtime import job_run

    build_synthetic_catalog(settings, SyntheticSpec(n_scans=12))
    with pytest.raises(JobError):
        with job_run(settings, "embed", {"run_id": "synthetic"}):
            raise JobError("UMAP needs at least 2 latent vectors")
    said = _status(settings)
    assert "embed     failed" in said
    assert "  run synthetic\n      UMAP needs at least 2 latent vectors\n" in said
    (job,) = json.loads(_status(settings, "--json"))["jobs"]
    assert (job["status"], job["error"]) == ("failed", "UMAP needs at least 2 latent vectors")


def test_disk_says_what_the_store_and_each_run_hold(settings):
    build_synthetic_catalog(settings, SyntheticSpec(n_scans=12, n_volume_files=12))
    assert "store on disk" not in _status(settings) and "disk" not in json.loads(_status(settings, "--json"))
    (settings.run_dir("synthetic") / "notes").mkdir()  # a folder of its own: counted too
    (settings.run_dir("synthetic") / "notes" / "a.txt").write_text("x" * 1000)
    use = json.loads(_status(settings, "--json", "--disk"))["disk"]
    run_files = [p for p in settings.run_dir("synthetic").rglob("*") if p.is_file()]
    assert use["runs"]["synthetic"] == {"files": len(run_files),
                                        "bytes": sum(p.stat().st_size for p in run_files)}
    volumes = list(settings.volumes_dir.iterdir())
    assert use["volumes"] == {"files": 12, "bytes": sum(p.stat().st_size for p in volumes)}
    said = _status(settings, "--disk")
    assert f"store on disk: volumes {use['volumes']['bytes'] / 1e9:.2f} GB in 12 files; run synthetic " in said
