"""The anomaly map's two regions in the catalog: the hottest region put at the rarer region's
peak, and back when the rating turns (a real DuckDB catalog, stored .npy volumes)."""

from __future__ import annotations

import numpy as np

from ctae_core.io.volume_store import save_volume
from data_catalog import CatalogSettings, connect
from data_catalog import scores as catalog_scores
from jobs.error_regions import measure_error_regions, move_hottest_regions
from tests.ctae_core.test_error_regions import _patient

LEAD, VALVE = (4, 30, 53), (4, 30, 36)


def _catalog(tmp_path, stored_shape=(8, 64, 64)) -> CatalogSettings:
    settings = CatalogSettings.resolve(tmp_path / "catalog.duckdb", tmp_path / "store", env={})
    hu = _patient()
    amap = np.zeros(hu.shape, dtype=np.int16)
    amap[LEAD] = 1500  # the patient's own lead, on the skin: the map's peak
    amap[VALVE] = 900  # a valve 48 mm deep
    volume = save_volume(hu, tmp_path / "s0.npy")
    error = save_volume(amap, tmp_path / "e0.npy")
    with connect(settings.catalog_path) as con:
        con.execute(
            "INSERT INTO scans (scan_id, source_kind, source_root, source_path, fingerprint, content_hash, "
            "spacing_mm, size_z, size_y, size_x, pixel_count, volume_path) "
            "VALUES ('s0', 'nifti', '/src', 's0.nii', 'f', 'h', 3.0, ?, ?, ?, ?, ?)",
            [*stored_shape, int(np.prod(stored_shape)), str(volume)])
        con.execute("INSERT INTO runs (run_id, status, config_json, spacing_mm) VALUES ('r', 'trained', '{}', 3.0)")
        con.execute(
            "INSERT INTO scores (run_id, scan_id, split, error_path, hot_z, hot_y, hot_x, local_error_hu) "
            "VALUES ('r', 's0', 'train', ?, ?, ?, ?, 1500.0)", [str(error), *LEAD])
    return settings


def _hottest(settings) -> tuple:
    with connect(settings.catalog_path, read_only=True) as con:
        return con.execute("SELECT hot_z, hot_y, hot_x, hot_y_mm, hot_volume_ml, local_error_interior_hu, "
                           "local_error_shell_hu FROM scores").fetchone()


def test_the_hottest_region_moves_to_the_rarer_regions_peak_and_back(tmp_path):
    settings = _catalog(tmp_path)
    assert measure_error_regions(settings, "r")["error_regions_measured"] == 1  # scored before v19
    assert _hottest(settings)[5:] == (900.0, 1500.0)
    assert move_hottest_regions(settings, "r", np.array(["s0"]), np.array([True]))["hottest_regions_moved"] == 1
    z, y, x, y_mm, volume_ml, _, _ = _hottest(settings)
    assert (z, y, x) == VALVE and y_mm == 90.0 and volume_ml == 27 / 1000  # one 3 mm voxel
    assert move_hottest_regions(settings, "r", np.array(["s0"]), np.array([True]))["hottest_regions_moved"] == 0
    assert move_hottest_regions(settings, "r", np.array(["s0"]), np.array([False]))["hottest_regions_moved"] == 1
    assert _hottest(settings)[:3] == LEAD


def test_a_map_off_the_stored_grid_keeps_the_maps_peak(tmp_path):
    # a cropped scan's map is the model's crop, not the stored grid: its hottest region stays
    settings = _catalog(tmp_path, stored_shape=(10, 64, 64))
    with connect(settings.catalog_path) as con:
        catalog_scores.write_error_regions(con, "r", [("s0", 900.0, 1500.0)])
    assert move_hottest_regions(settings, "r", np.array(["s0"]), np.array([True]))["hottest_regions_moved"] == 0
    assert _hottest(settings)[:3] == LEAD
