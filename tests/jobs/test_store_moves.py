"""A catalog moved with its store (a project folder copied to the team's server, renamed) keeps
working: the jobs that read the store follow it; a store that is still there, or whose volumes
did not all arrive, is left as it was."""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from ctae_core.io.volume_store import load_volume
from data_catalog import CatalogSettings, connect
from data_catalog.store_paths import STORE_PATH_COLUMNS
from jobs.options import settings_from
from jobs.synthetic_catalog import SyntheticSpec, build_synthetic_catalog

ROOT = Path(__file__).resolve().parents[2]


def _project(folder: Path) -> CatalogSettings:
    settings = CatalogSettings.resolve(folder / "catalog.duckdb", env={})
    build_synthetic_catalog(settings, SyntheticSpec(n_scans=20))
    return settings


def _store_paths(catalog: Path) -> list[str]:
    with connect(catalog, read_only=True) as con:
        return [path for table, column in STORE_PATH_COLUMNS
                for (path,) in con.execute(f"SELECT {column} FROM {table} WHERE {column} IS NOT NULL").fetchall()]


def test_a_project_folder_moved_elsewhere_is_followed_by_the_jobs_that_read_its_store(tmp_path, caplog):
    before = _store_paths(_project(tmp_path / "workstation").catalog_path)
    assert len(before) == 20 + 20 + 20  # volumes, reconstructions, maps (the synthetic run has no checkpoint)
    shutil.move(tmp_path / "workstation", tmp_path / "server")
    catalog = tmp_path / "server" / "catalog.duckdb"
    assert settings_from(catalog).store_dir == tmp_path / "server" / "store"
    assert _store_paths(catalog) == before  # a job that does not read the store changes nothing

    with caplog.at_level(logging.WARNING, logger="jobs.store_moves"):
        settings = settings_from(catalog, follow_store=True)
    after = _store_paths(catalog)
    assert after == [p.replace(str(tmp_path / "workstation"), str(tmp_path / "server")) for p in before]
    assert all(Path(p).is_file() for p in after)
    assert f"moved from {tmp_path / 'workstation' / 'store'} to {settings.store_dir}: 60 catalog paths" in caplog.text
    assert settings_from(catalog, follow_store=True) == settings  # once: nothing left to move
    assert _store_paths(catalog) == after

    # a job that reads the store, as a user runs it: every scan's volume and map exported
    done = subprocess.run([sys.executable, "-m", "jobs", "export", "--run", "synthetic", "--format", "nifti",
                           "--out", str(tmp_path / "nifti"), "--catalog", str(catalog)],
                          capture_output=True, text=True, timeout=300,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "exported 20 scans" in done.stdout
    assert np.array_equal(load_volume(after[0]), load_volume(before[0].replace("workstation", "server")))


def test_a_store_still_in_place_or_not_all_moved_is_left_as_it_was(tmp_path, caplog):
    _project(tmp_path / "a")
    shutil.copytree(tmp_path / "a", tmp_path / "copy")  # a copy beside the original
    copy = tmp_path / "copy" / "catalog.duckdb"
    before = _store_paths(copy)
    settings_from(copy, follow_store=True)
    assert _store_paths(copy) == before  # the original store is still there: it is read

    shutil.rmtree(tmp_path / "a")
    lost = tmp_path / "copy" / "store" / "volumes" / Path(before[0]).name
    lost.unlink()
    with caplog.at_level(logging.WARNING, logger="jobs.store_moves"):
        settings_from(copy, follow_store=True)
    assert _store_paths(copy) == before
    # the synthetic catalog's 20 scans share 4 volume files: one file lost is 5 scans' volumes
    assert f"lacks 5 of its 20 volumes (e.g. {lost.name}); paths left as they were" in caplog.text
