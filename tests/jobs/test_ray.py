"""The Ray executor on a local Ray instance (2 CPUs): the same catalog as the local executor
for ingest and score, and a worker or actor killed mid-job is survived with each scan once.

One Ray instance for the module (starting Ray costs seconds on 2 cores); the jobs reuse it
because they find Ray already initialised in this process.
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from typer.testing import CliRunner

from ctae_core.io.volume_store import load_volume, save_volume
from ctae_core.phantoms import torso
from data_catalog import CatalogSettings, connect
from jobs.cli import app
from jobs.executors import ExecutorConfig, map_stateful
from jobs.ingest import IngestSummary, _run_batches, _Writes
from jobs.ingest_worker import ingest_one
from tests.dicom_factory import phantom, write_phantom

pytestmark = pytest.mark.slow
ray = pytest.importorskip(
    "ray", reason="the Ray tests need the ray extra: pip install -e '.[dev,ray]'"
)
RAY = ExecutorConfig(kind="ray", max_retries=2)
runner = CliRunner()


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    """A 2-CPU local Ray. This module's dying functions travel to the workers by value, so a
    (re)started worker needs no import of the test module (and none of its heavy imports)."""
    module = sys.modules[__name__]
    ray.cloudpickle.register_pickle_by_value(module)
    ray.init(
        num_cpus=2, include_dashboard=False, object_store_memory=200 * 1024**2, log_to_driver=False
    )
    yield
    ray.shutdown()
    ray.cloudpickle.unregister_pickle_by_value(module)


def _settings(root: Path) -> CatalogSettings:
    settings = CatalogSettings.resolve(root / "catalog.duckdb", root / "store", env={})
    with connect(settings.catalog_path):
        pass
    return settings


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> Path:
    """Two DICOM series, three volume files of different sizes and one corrupt NIfTI."""
    root = tmp_path_factory.mktemp("in")
    write_phantom(root / "a" / "ct", phantom((20, 32, 32), seed=1))
    write_phantom(root / "b" / "ct", phantom((26, 30, 32), seed=2))
    for i, shape in enumerate([(18, 28, 30), (24, 32, 32), (30, 26, 28)]):
        image = sitk.GetImageFromArray(phantom(shape, seed=10 + i))
        image.SetSpacing((2.0, 2.0, 2.5))
        sitk.WriteImage(image, str(root / f"vol{i}.mha"))
    (root / "broken.nii.gz").write_bytes(b"\x1f\x8b not really a gzip file")
    return root


def _table(settings: CatalogSettings, table: str, key: str) -> pd.DataFrame:
    """A catalog table without the columns that differ between two stores or two moments."""
    with connect(settings.catalog_path, read_only=True) as con:
        frame = con.execute(f"SELECT * FROM {table} ORDER BY {key}").df()
    return frame.drop(columns=[c for c in frame.columns if c.endswith(("_at", "_path"))])


def test_ray_ingest_writes_the_same_catalog_as_the_local_pool(sources, tmp_path):
    local, remote = _settings(tmp_path / "local"), _settings(tmp_path / "ray")
    for settings, extra in ((local, ["--workers", "2"]), (remote, ["--executor", "ray"])):
        result = runner.invoke(
            app,
            [
                "ingest",
                str(sources),
                "--catalog",
                str(settings.catalog_path),
                "--store",
                str(settings.store_dir),
                "--no-progress",
                *extra,
            ],
        )
        assert result.exit_code == 0, result.output
        assert "ingested 5" in result.output and "failed 1" in result.output
    pd.testing.assert_frame_equal(
        _table(local, "scans", "scan_id"), _table(remote, "scans", "scan_id")
    )
    pd.testing.assert_frame_equal(
        _table(local, "ingest_errors", "source_key"), _table(remote, "ingest_errors", "source_key")
    )
    for npy in sorted(local.volumes_dir.glob("*.npy")):
        np.testing.assert_array_equal(load_volume(npy), load_volume(remote.volumes_dir / npy.name))


def ingest_or_die(source, store_dir: str, spacing: float, marker_dir: str):
    """``ingest_one``, except that the worker holding ``vol1.mha`` dies the first time."""
    marker = Path(marker_dir) / "died"
    if source.source_path.endswith("vol1.mha") and not marker.exists():
        marker.touch()
        os._exit(1)
    return ingest_one(source, store_dir, spacing)


def test_ray_worker_killed_mid_ingest_is_survived_and_each_scan_is_stored_once(sources, tmp_path):
    from ctae_core.io.sources import discover_sources

    settings = _settings(tmp_path)
    todo = discover_sources([sources]).sources
    worker = functools.partial(
        ingest_or_die, store_dir=str(settings.store_dir), spacing=3.0, marker_dir=str(tmp_path)
    )
    summary = IngestSummary()
    writes = _Writes(settings, summary, job=None, first=lambda con: None)  # outside a job record
    _run_batches(worker, todo, writes, RAY, progress=False)
    assert (tmp_path / "died").exists(), "a worker really died"
    assert summary.ingested == 5 and sum(summary.failed.values()) == 1  # the corrupt NIfTI
    with connect(settings.catalog_path, read_only=True) as con:
        per_scan = con.execute("SELECT scan_id, count(*) FROM scans GROUP BY scan_id").fetchall()
        reasons = [r[0] for r in con.execute("SELECT reason FROM ingest_errors").fetchall()]
    assert len(per_scan) == 5 and all(n == 1 for _, n in per_scan)
    assert "worker_died" not in reasons and len(reasons) == 1


class DieOnce:
    """Factory for actors: the item ``victim`` kills its actor on its first try (``always``:
    on every try); other items are doubled."""

    def __init__(self, marker_dir: str, victim: int, always: bool = False) -> None:
        self.marker_dir, self.victim, self.always = marker_dir, victim, always

    def __call__(self):
        pid = os.getpid()

        def work(x: int) -> tuple[int, int]:
            marker = Path(self.marker_dir) / f"died-{x}"
            if x == self.victim and (self.always or not marker.exists()):
                marker.touch()
                os._exit(1)
            return x * 2, pid

        return work


def test_actor_killed_mid_job_is_restarted_and_its_item_retried(tmp_path):
    config = ExecutorConfig(kind="ray", workers=2, max_retries=1)
    results = list(map_stateful(DieOnce(str(tmp_path), victim=2), range(6), config, actors=True))
    assert (tmp_path / "died-2").exists()
    assert sorted(r.value[0] for r in results) == [0, 2, 4, 6, 8, 10]
    assert len({r.value[1] for r in results}) <= 3, "two actors, one of them restarted once"

    results = list(
        map_stateful(DieOnce(str(tmp_path), victim=4, always=True), range(6), config, actors=True)
    )
    assert len(results) == 6 and sorted(r.value[0] for r in results if r.ok) == [0, 2, 4, 6, 10]
    (bad,) = [r for r in results if not r.ok]
    assert bad.item == 4 and "died on each of 2 tries" in bad.error


def _scores(settings: CatalogSettings) -> pd.DataFrame:
    with connect(settings.catalog_path, read_only=True) as con:
        return con.execute(
            "SELECT scan_id, split, mse, mse_m, mse_region, error_fraction, "
            "is_outlier, latent, recon_path FROM scores ORDER BY scan_id"
        ).df()


def test_ray_actors_score_like_the_local_executor(settings):
    rng = np.random.default_rng(3)
    with connect(settings.catalog_path) as con:
        for i in range(15):  # 15 scans: 2 in val, enough for T
            array = torso((16 + 2 * (i % 3), 32, 32), rng)
            path = save_volume(array, settings.volumes_dir / f"s{i}.npy")
            con.execute(
                "INSERT INTO scans (scan_id, source_kind, source_root, source_path, "
                "fingerprint, content_hash, spacing_mm, size_z, size_y, size_x, "
                "pixel_count, volume_path) VALUES (?, 'nifti', '/src', ?, 'f', 'h', 3.0, "
                "?, ?, ?, ?, ?)",
                [f"s{i}", f"s{i}.nii", *array.shape, array.size, str(path)],
            )
    common = [
        "--catalog",
        str(settings.catalog_path),
        "--store",
        str(settings.store_dir),
        "--no-progress",
        "--device",
        "cpu",
    ]
    trained = runner.invoke(
        app, ["train", "--run", "r", "--preset", "tiny", "--epochs", "1", *common]
    )
    assert trained.exit_code == 0, trained.output
    local = runner.invoke(app, ["score", "--run", "r", "--batch-size", "3", *common])
    assert local.exit_code == 0 and "scored 15, failed 0" in local.output, local.output
    first = _scores(settings)
    recons = {row.scan_id: load_volume(row.recon_path) for row in first.itertuples()}
    remote = runner.invoke(
        app,
        [
            "score",
            "--run",
            "r",
            "--batch-size",
            "3",
            "--overwrite",
            "--executor",
            "ray",
            "--workers",
            "2",
            *common,
        ],
    )
    assert remote.exit_code == 0 and "scored 15, failed 0" in remote.output, remote.output
    second = _scores(settings)
    assert list(first["scan_id"]) == list(second["scan_id"]) and first["is_outlier"].notna().all()
    for column in ("mse", "mse_m", "mse_region", "error_fraction"):
        np.testing.assert_allclose(second[column], first[column], rtol=1e-5, err_msg=column)
    np.testing.assert_allclose(
        np.stack(second["latent"]), np.stack(first["latent"]), rtol=1e-4, atol=1e-5
    )
    assert list(second["is_outlier"]) == list(first["is_outlier"])
    for row in second.itertuples():
        assert np.abs(load_volume(row.recon_path).astype(int) - recons[row.scan_id]).max() <= 1
