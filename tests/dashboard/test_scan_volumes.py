"""The viewer's files: a series as acquired in int16 slabs, with the stored grid's overlays and the
hottest region mapped onto it by physical position, cached per series, and the stored volume
when the source is gone."""

from __future__ import annotations

import gzip
import os

import numpy as np

from ctae_core.anomaly_map import hottest_region_mask
from ctae_core.geometry import rescaled_grid
from dashboard import scan_volumes
from data_catalog import connect, views
from jobs.ingest import run_ingest
from tests.dashboard.viewer_browser import chest_series


def test_rescaled_grid_shares_the_stored_volumes_box():
    spacing, origin = rescaled_grid((24, 40, 40), 3.0, (10.0, 0.0, 0.0), (12, 20, 20))
    assert spacing == (6.0, 6.0, 6.0) and origin == (11.5, 1.5, 1.5)  # edges at −1.5 mm match


def _volume(cache, shown: scan_volumes.ViewerScan) -> np.ndarray:
    parts = [np.frombuffer(gzip.decompress((cache / f).read_bytes()), "<i2") for f in shown.slabs]
    return np.concatenate(parts).reshape(shown.shape_zyx)


def _overlay_voxel(overlay: dict, xyz) -> np.ndarray:
    return np.asarray(overlay["to_overlay"]) @ np.append(np.asarray(xyz, float), 1.0)


def test_native_series_and_overlays_line_up_and_fall_back(settings, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setattr(scan_volumes, "VIEWER_CACHE", cache)
    source = chest_series(tmp_path / "src" / "chest", (30, 96, 96), (1.0, 0.7, 0.7))
    run_ingest([source], settings, workers=1, progress=False)
    with connect(settings.catalog_path, read_only=True) as con:
        scan = views.scan_table(con, None).iloc[0].to_dict()
    stored = np.load(scan["volume_path"])
    error = np.zeros(tuple(n // 2 for n in stored.shape), np.int16)
    error[2:5, 4:7, 6:9] = 500  # a hot region peaking at voxel (3, 5, 7)
    assert error.shape == (5, 11, 11)  # 6 mm voxels: the two spots below lie 27 mm apart
    error[3, 5, 7] = 520
    error[2:5, 8:11, 0:3] = 300  # a cooler one in a far corner: the next hottest region
    np.save(tmp_path / "error.npy", error)
    scan["error_path"], scan["recon_path"] = str(tmp_path / "error.npy"), None
    shown = scan_volumes.viewer_scan(scan)
    assert shown.native and shown.note.startswith("As acquired: 96×96×30 voxels of 0.70×0.70×1.00 mm")
    native = _volume(cache, shown)
    assert native.shape == (30, 96, 96) and len(shown.slabs) == 1 and shown.previews == []
    assert (native >= 2900).sum() == 30 * 9  # the 3×3-voxel lead, every slice
    roles = {o["role"]: o for o in shown.overlays}
    assert set(roles) == {"error", "region"}
    region = np.frombuffer(gzip.decompress((cache / roles["region"]["file"]).read_bytes()), "<i2")
    region = region.reshape(error.shape)  # the regions labelled, 1 the hottest (the stored rule)
    assert region[3, 5, 7] == 1 and (region == 1).sum() == hottest_region_mask(error)[0].sum() == 27
    assert (region[2:5, 8:11, 0:3] == 2).all() and (region == 2).sum() == 27 and region.max() == 2
    # the anomaly map covers the same physical box as the series: the series' centre voxel
    # lands on the map's centre, within one map voxel
    centre = _overlay_voxel(roles["error"], (np.array([96, 96, 30]) - 1) / 2)
    assert np.allclose(centre, (np.array(error.shape[::-1]) - 1) / 2, atol=1.0)
    # opened at the hottest region: the crosshair voxel lies in the hot box of the map
    x, y, z = np.rint(_overlay_voxel(roles["error"], shown.crosshair_xyz)).astype(int)
    assert error[z, y, x] >= 500
    # and the viewer steps on to the next region: its peak's voxel of the series lies in it
    assert len(shown.regions_xyz) == 2 and shown.regions_xyz[0] == shown.crosshair_xyz
    x, y, z = np.rint(_overlay_voxel(roles["error"], shown.regions_xyz[1])).astype(int)
    assert error[z, y, x] == 300
    slab_time = (cache / shown.slabs[0]).stat().st_mtime_ns
    assert scan_volumes.viewer_scan(scan) == shown  # from the cache: no file re-read or written
    assert (cache / shown.slabs[0]).stat().st_mtime_ns == slab_time
    first = next(source.iterdir())
    os.utime(first, ns=(first.stat().st_atime_ns, first.stat().st_mtime_ns + 10**9))
    assert scan_volumes.viewer_scan(scan).folder != shown.folder  # a changed file: read again
    scan["source_root"] = str(tmp_path / "gone")
    fallback = scan_volumes.viewer_scan(scan)
    assert not fallback.native and "source not reachable" in fallback.note
    assert np.array_equal(_volume(cache, fallback), stored)
    # a run scored since v8 stored its hottest region on the stored grid: the viewer opens there
    assert fallback.crosshair_xyz == [14, 10, 6]  # the map's hot box, (3, 5, 7) at half size
    scan.update(hot_z=2, hot_y=3, hot_x=4)
    opened = scan_volumes.viewer_scan(scan)
    assert opened.crosshair_xyz == [4, 3, 2]


def test_series_stored_against_lps_are_flipped_and_stay_in_place():
    hu = np.arange(2 * 3 * 4, dtype=np.int16).reshape(2, 3, 4)
    affine = np.diag([-0.7, -0.7, 1.0, 1.0])  # a feet-first prone series: x and y reversed
    affine[:3, 3] = (100.0, 50.0, -20.0)
    flipped, new_affine = scan_volumes._canonical(hu, affine)
    assert np.all(np.diag(new_affine)[:3] > 0)
    for z, y, x in np.ndindex(hu.shape):  # every voxel keeps its value at its place in mm
        place = new_affine @ np.array([x, y, z, 1.0])
        i, j, k = np.rint(np.linalg.solve(affine, place)[:3]).astype(int)
        assert flipped[z, y, x] == hu[k, j, i]


def test_a_series_of_several_slabs_comes_with_previews_of_every_fourth_then_second_voxel(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setattr(scan_volumes, "VIEWER_CACHE", cache)
    hu = np.random.default_rng(0).integers(-1000, 3000, (71, 256, 256), dtype=np.int16)
    np.save(tmp_path / "scan.npy", hu)
    scan = {"scan_id": "s", "volume_path": str(tmp_path / "scan.npy"), "recon_path": None,
            "error_path": None, "spacing_mm": 3.0, "source_root": str(tmp_path / "gone"),
            "source_path": ".", "series_uid": None}
    shown = scan_volumes.viewer_scan(scan)
    assert len(shown.slabs) == 3 and np.array_equal(_volume(cache, shown), hu)  # 30 slices a slab
    assert [(p["factor"], p["shape_zyx"]) for p in shown.previews] == [(4, [18, 64, 64]),
                                                                      (2, [36, 128, 128])]
    for p in shown.previews:  # coarsest first; voxels as they are: true HU, no average
        preview = np.frombuffer(gzip.decompress((cache / p["file"]).read_bytes()), "<i2")
        step = p["factor"]
        assert np.array_equal(preview.reshape(p["shape_zyx"]), hu[::step, ::step, ::step])
