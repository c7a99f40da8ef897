"""The viewer's files: a series as acquired with the stored grid's overlays in the same
physical place, and the stored volume when the source is gone."""

from __future__ import annotations

import nibabel as nib
import numpy as np

from ctae_core.geometry import rescaled_grid
from dashboard import scan_volumes
from data_catalog import connect, views
from jobs.ingest import run_ingest
from tests.dashboard.viewer_browser import chest_series


def test_rescaled_grid_shares_the_stored_volumes_box():
    spacing, origin = rescaled_grid((24, 40, 40), 3.0, (10.0, 0.0, 0.0), (12, 20, 20))
    assert spacing == (6.0, 6.0, 6.0) and origin == (11.5, 1.5, 1.5)  # edges at −1.5 mm match


def _centre_mm(image) -> np.ndarray:
    return (image.affine @ np.append((np.array(image.shape) - 1) / 2, 1.0))[:3]


def test_native_series_and_overlays_line_up_and_fall_back(settings, tmp_path, monkeypatch):
    monkeypatch.setattr(scan_volumes, "VIEWER_CACHE", tmp_path / "cache")
    source = chest_series(tmp_path / "src" / "chest", (30, 96, 96), (1.0, 0.7, 0.7))
    run_ingest([source], settings, workers=1, progress=False)
    with connect(settings.catalog_path, read_only=True) as con:
        scan = views.scan_table(con, None).iloc[0].to_dict()
    stored = np.load(scan["volume_path"])
    error = np.zeros(tuple(n // 2 for n in stored.shape), np.int16)
    error[2:5, 4:7, 6:9] = 500  # a hot region centred on voxel (3, 5, 7)
    np.save(tmp_path / "error.npy", error)
    scan["error_path"], scan["recon_path"] = str(tmp_path / "error.npy"), None
    shown = scan_volumes.viewer_scan(scan)
    assert shown.native and shown.note.startswith("As acquired: 96×96×30 voxels of 0.70×0.70×1.00 mm")
    native = nib.load(tmp_path / "cache" / shown.volume)
    anomaly = nib.load(tmp_path / "cache" / shown.overlays[0][1])
    assert native.shape == (96, 96, 30) and anomaly.shape == error.shape[::-1]
    assert (np.asarray(native.dataobj) >= 2900).sum() == 30 * 9  # the 3×3-voxel lead, every slice
    # the anomaly map covers the same physical box as the series (centres within a voxel)
    assert np.allclose(_centre_mm(native), _centre_mm(anomaly), atol=0.7)
    hot = anomaly.affine @ np.array([7, 5, 3, 1.0])
    assert np.allclose(shown.crosshair_mm, hot[:3])
    assert scan_volumes.viewer_scan(scan) == shown  # reused from the cache, not re-read
    scan["source_root"] = str(tmp_path / "gone")
    fallback = scan_volumes.viewer_scan(scan)
    assert not fallback.native and "source not reachable" in fallback.note
    assert nib.load(tmp_path / "cache" / fallback.volume).shape == stored.shape[::-1]
    # a run scored since v8 stored its hottest region on the stored grid: the viewer opens there
    scan.update(hot_z=6, hot_y=10, hot_x=14)
    opened = scan_volumes.viewer_scan(scan)
    volume = nib.load(tmp_path / "cache" / opened.volume)
    assert np.allclose(opened.crosshair_mm, (volume.affine @ np.array([14, 10, 6, 1.0]))[:3])
    assert not np.allclose(opened.crosshair_mm, fallback.crosshair_mm)
