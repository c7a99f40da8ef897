"""`ctae evaluate`'s localisation counts: by the hottest region, and by one of the regions the
viewer steps through."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ctae_core.anomaly_map import anomaly_map, hottest_region_mask
from ctae_core.io.mask_files import write_mask
from ctae_core.io.volume_store import save_volume
from jobs.localisation import format_localisation, localisation_counts
from tests.ctae_core.test_anomaly_map import _scan_with_object


def test_evaluate_counts_an_object_behind_a_hotter_dense_voxel_of_the_scan(tmp_path):
    error, body, obj = _scan_with_object()
    amap = anomaly_map(error, body, 3.0)
    amap[5, 30, 5] = 3000.0  # the scan's own electrode: hotter than the object, 60+ mm away
    rows, masks = [], []
    for i, object_mask in enumerate((obj, obj, np.zeros_like(obj))):
        peak = hottest_region_mask(amap)[1]
        stored = save_volume(np.rint(amap).astype(np.int16), tmp_path / f"s{i}.npy")
        rows.append({"scan_id": f"s{i}", "error_path": str(stored), "hot_z": peak[0], "hot_y": peak[1],
                     "hot_x": peak[2], "size_z": 24, "size_y": 40, "size_x": 32, "spacing_mm": 3.0})
        write_mask(object_mask, (3.0,) * 3, (0.0,) * 3, tmp_path / f"m{i}.nii.gz")
        masks.append(f"m{i}.nii.gz")
    counts = localisation_counts(pd.DataFrame(rows), pd.Series(masks), tmp_path, {"spacing_mm": 3.0})
    assert counts["localisation_scans"] == 2  # the empty mask is left out of both shares
    assert counts["hottest_within_10mm"] == 0.0 and counts["hottest_3_within_10mm"] == 1.0
    assert "hottest region within 10 mm of the object 0 %" in format_localisation(counts)
    assert "one of the 3 hottest within 10 mm 100 %" in format_localisation(counts)


def test_evaluate_locates_from_the_stored_hottest_region_where_score_moved_it(tmp_path):
    # the stored hottest region is where `ctae score` put it (the rarer region's peak), which
    # may not be the map's peak: evaluate counts that place, and the viewer's next regions after it
    error, body, obj = _scan_with_object()
    amap = anomaly_map(error, body, 3.0)
    amap[5, 30, 5] = 3000.0  # the scan's own electrode: the map's peak, 60+ mm from the object
    on_object = hottest_region_mask(np.where(obj, amap, 0))[1]
    stored = save_volume(np.rint(amap).astype(np.int16), tmp_path / "s0.npy")
    write_mask(obj, (3.0,) * 3, (0.0,) * 3, tmp_path / "m0.nii.gz")
    row = {"scan_id": "s0", "error_path": str(stored), "size_z": 24, "size_y": 40, "size_x": 32, "spacing_mm": 3.0}
    for hot, found in ((on_object, 1.0), ((5, 30, 5), 0.0)):
        rows = pd.DataFrame([{**row, "hot_z": hot[0], "hot_y": hot[1], "hot_x": hot[2]}])
        counts = localisation_counts(rows, pd.Series(["m0.nii.gz"]), tmp_path, {"spacing_mm": 3.0})
        assert counts["hottest_within_10mm"] == found and counts["hottest_3_within_10mm"] == 1.0
