"""The anomaly map, its hottest region, and localisation against object masks."""

from __future__ import annotations

import numpy as np
import pytest

from ctae_core.anomaly_map import (
    REGION_LEVEL,
    anomaly_map,
    hottest_region,
    hottest_region_mask,
    hottest_regions,
    region_labels,
    rescale_index,
)
from ctae_core.localisation import NEAR_MM, distance_to_mask_mm, localise


def _scan_with_object(centre=(10, 20, 14)):
    rng = np.random.default_rng(0)
    error = rng.uniform(0, 40, size=(24, 40, 32)).astype(np.float32)  # noise of a good model
    obj = np.zeros(error.shape, dtype=bool)
    z, y, x = centre
    obj[z - 1:z + 2, y - 2:y + 3, x - 1:x + 2] = True  # 45 voxels = 1.215 mL at 3 mm
    error[obj] = 900.0
    error[0, 0, 0] = 5000.0  # a lone hot voxel, in the air: masked out
    body = np.ones(error.shape, dtype=bool)
    body[:, :4] = False
    return error, body, obj


def test_map_is_the_error_above_its_surroundings_and_zero_outside_the_body():
    error, body, obj = _scan_with_object()
    amap = anomaly_map(error, body, 3.0)
    assert amap.dtype == np.float32 and amap.shape == error.shape
    assert (amap[~body] == 0).all() and (amap >= 0).all()
    assert obj[np.unravel_index(int(np.argmax(amap)), amap.shape)]  # the peak is on the object
    assert 600 < amap[obj].min() and amap.max() < 900.0  # less what surrounds it
    assert np.quantile(amap[body & ~obj], 0.99) < 40  # the model's noise stays near its own level
    # a broad raised region (an edge's or a whole organ's error) is its own surroundings
    broad = np.zeros((30, 30, 30), np.float32)
    broad[5:25, 5:25, 5:25] = 300.0
    inside = anomaly_map(broad, np.ones(broad.shape, bool), 3.0)[10:20, 10:20, 10:20]
    assert inside.max() < 0.01 * 300  # 2.5 σ inside its border
    # one voxel's error stands almost whole above its surroundings (σ 6 mm at 3 mm: 2 voxels)
    lone = np.zeros((21, 21, 21), np.float32)
    lone[10, 10, 10] = 500.0
    assert anomaly_map(lone, np.ones(lone.shape, bool), 3.0)[10, 10, 10] == pytest.approx(500 * (1 - 0.0080), abs=1.0)
    with pytest.raises(ValueError, match="differ in shape"):
        anomaly_map(error, body[:-1], 3.0)
    with pytest.raises(ValueError, match="must be > 0"):
        anomaly_map(error, body, 0.0)


def test_the_peak_is_sought_away_from_the_cut_faces():
    error, body, obj = _scan_with_object()
    error[0, 20, 20] = error[-1, 30, 10] = 1500.0  # dense bone cut by the first and last slice
    amap = anomaly_map(error, body, 3.0)
    assert amap[0, 20, 20] > amap[obj].max() and amap[-1, 30, 10] > amap[obj].max()  # kept
    region = hottest_region(amap, 3.0)
    assert obj[region.centre_zyx] and region.peak_hu == pytest.approx(amap[obj].max())
    # a region that reaches an end slice keeps its voxels there
    run = np.zeros((10, 12, 12), np.float32)
    run[:, 6, 6] = 300.0  # a cable through the whole scan
    run[0, 6, 6] = 900.0  # strongest on the cut face
    mask, peak_at, peak = hottest_region_mask(run)
    assert peak_at[0] not in (0, 9) and peak == 300.0 and mask[:, 6, 6].all()
    thin = np.zeros((2, 8, 8), np.float32)
    thin[1, 4, 4] = 400.0  # two slices have no inside: the peak is sought on both
    assert hottest_region_mask(thin)[1] == (1, 4, 4)


def test_hottest_region_is_the_object_with_its_volume_and_peak():
    error, body, obj = _scan_with_object()
    region = hottest_region(anomaly_map(error, body, 3.0), spacing_mm=3.0)
    assert obj[region.centre_zyx]
    assert region.centre_mm(3.0) == tuple(3.0 * i for i in region.centre_zyx)
    assert 0.5 * 1.215 < region.volume_ml < 2.5 * 1.215  # the region at 0.3 of the peak: about the 45 voxels
    assert 400 < region.peak_hu < 900
    assert hottest_region(np.zeros((4, 4, 4)), 3.0).volume_ml == 0.0


def test_the_region_mask_is_the_stored_volumes_six_connected_part_above_the_level():
    assert REGION_LEVEL == 0.3
    amap = np.zeros((20, 20, 20), np.int16)  # as `ctae score` stores a map
    amap[4:9, 4:9, 4:9] = 400  # the hottest spot, 5³ voxels
    amap[6, 6, 6] = 410  # its peak
    amap[9, 9, 9] = 400  # touches the spot only at a corner: not 6-connected
    amap[14:17, 14:17, 14:17] = 300  # a cooler spot elsewhere
    amap[4, 4, 3] = 122  # below 0.3 of the peak (123)
    amap[8, 8, 9] = 124  # above it, and 6-connected: in
    mask, peak_at, peak = hottest_region_mask(amap)
    assert peak_at == (6, 6, 6) and peak == 410.0
    assert mask.sum() == 5 ** 3 + 1 and mask[4:9, 4:9, 4:9].all() and mask[8, 8, 9]
    assert not mask[9, 9, 9] and not mask[15, 15, 15] and not mask[4, 4, 3]
    assert hottest_region_mask(amap, 0.5)[0].sum() == 5 ** 3  # half the peak (205): 124 is out
    assert hottest_region(amap, 3.0).volume_ml == pytest.approx(mask.sum() * 27 / 1000)
    empty, _, _ = hottest_region_mask(np.zeros((4, 4, 4)))
    assert not empty.any()


def test_the_next_hottest_regions_lie_apart_from_the_ones_before():
    amap = np.zeros((30, 40, 40), np.int16)
    amap[10, 10, 10] = 900  # a lone dense voxel of the scan's own, hotter than the object
    amap[10, 11, 10] = 500  # its shoulder, in its region (above 0.3 × 900)
    amap[10, 13, 10] = 800  # 9 mm away: the same neighbourhood, never offered again
    amap[20:23, 25:30, 25:28] = 600  # the object, 45 voxels
    amap[21, 27, 26] = 700
    amap[5, 35, 5] = 100  # a faint third spot
    before = amap.copy()
    regions = hottest_regions(amap, 3.0)
    assert len(regions) == 3 and (amap == before).all()  # the caller's map is left alone
    first, second, third = regions
    mask, peak_at, peak = hottest_region_mask(amap)
    assert first[1] == peak_at == (10, 10, 10) and (first[0] == mask).all() and first[2] == 900
    assert second[1] == (21, 27, 26) and second[2] == 700 and second[0].sum() == 45
    assert third[1] == (5, 35, 5) and third[2] == 100  # not the 800 HU voxel 9 mm from the first
    labels = region_labels(regions, amap.shape)
    assert labels.dtype == np.uint8 and labels[10, 10, 10] == 1 and labels[21, 27, 26] == 2
    assert labels[5, 35, 5] == 3 and (labels > 0).sum() == sum(int(m.sum()) for m, _, _ in regions)
    assert len(hottest_regions(amap, 3.0, count=5)) == 3  # nothing positive is left after three
    assert hottest_regions(np.zeros((4, 4, 4)), 3.0) == []
    with pytest.raises(ValueError, match="count"):
        hottest_regions(amap, 3.0, count=0)


def test_the_first_region_can_start_where_score_put_the_hottest_region():
    # `ctae score` puts the hottest region at the peak of the region its evidence rates rarer
    # (inside the patient or its shell); the viewer's regions then start there, and the map's
    # own peak comes next
    amap = np.zeros((30, 40, 40), np.int16)
    amap[10, 10, 10] = 900  # a lead on the skin: the map's peak
    amap[20:23, 25:30, 25:28] = 600  # the object inside
    amap[21, 27, 26] = 700
    first, second = hottest_regions(amap, 3.0, count=2, first_at=(21, 27, 26))
    assert first[1] == (21, 27, 26) and first[2] == 700 and first[0].sum() == 45
    assert second[1] == (10, 10, 10) and second[2] == 900
    region = hottest_region(amap, 3.0, at=(21, 27, 26))
    assert region.centre_zyx == (21, 27, 26) and region.volume_ml == pytest.approx(45 * 27 / 1000)
    # a stored voxel that lands off the map or on a dark voxel (a cropped scan's map) leaves
    # the map's own peak first, in the one region and in the viewer's list alike
    for off in ((5, 5, 5), (99, 0, 0), (-1, 10, 10)):
        assert [p for _, p, _ in hottest_regions(amap, 3.0, count=2, first_at=off)] == [(10, 10, 10), (21, 27, 26)]
        mask, at, peak = hottest_region_mask(amap, at=off)
        assert at == (10, 10, 10) and peak == 900 and mask.sum() == 1


def test_an_index_moves_between_grids_by_physical_position():
    assert rescale_index((3, 0, 10), 6.0, 3.0) == (7, 1, 21)  # the 6 mm voxel's second half
    assert rescale_index((7, 1, 21), 3.0, 6.0) == (3, 0, 10)
    assert rescale_index((9, 9, 9), 3.0, 3.0, shape=(5, 20, 20)) == (4, 9, 9)


def test_localisation_counts_hits_within_10_mm_and_voxel_ap():
    error, body, obj = _scan_with_object()
    amap = anomaly_map(error, body, 3.0)
    near = (10, 20, 17)  # 9 mm beside the object's centre, 6 mm from its edge
    assert distance_to_mask_mm(near, obj, 3.0) == pytest.approx(6.0)
    far = (20, 35, 28)
    assert distance_to_mask_mm(far, obj, 3.0) > NEAR_MM
    result = localise([amap, amap], [obj, obj], [(10, 20, 14), far], 3.0)
    assert result.n_scans == 2 and result.hit_rate == 0.5
    assert result.voxel_ap > 0.9  # the map ranks the object's voxels first
    blind = localise([np.zeros_like(amap)], [obj], [far], 3.0)
    assert blind.voxel_ap == pytest.approx(obj.mean())  # a flat map: AP = the positive share
    assert localise([amap], [np.zeros_like(obj)], [far], 3.0).n_scans == 0


def test_a_mask_file_lands_on_the_stored_grid_by_physical_position(tmp_path):
    from ctae_core.io.mask_files import mask_on_stored_grid, write_mask

    mask = np.zeros((30, 60, 60), dtype=bool)  # 1.5 mm voxels, 45 × 90 × 90 mm
    mask[10:16, 20:30, 30:40] = True  # z 15–24 mm, y 30–45, x 45–60
    path = write_mask(mask, (1.5, 1.5, 1.5), (-20.0, 5.0, 100.0), tmp_path / "m.nii.gz")
    grid = mask_on_stored_grid(path, 3.0)
    assert grid.shape == (15, 30, 30)
    z, y, x = np.nonzero(grid)
    assert (z.min(), z.max(), y.min(), y.max(), x.min(), x.max()) == (5, 7, 10, 14, 15, 19)

