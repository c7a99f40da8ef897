"""The explorer's montage of flagged scans: key slices at the hottest region, one click away
from the viewer."""

from __future__ import annotations

import numpy as np

from dashboard.montage import key_slice
from data_catalog import connect, views


def test_key_slice_cuts_the_stored_region_else_the_anomaly_map_peak():
    error = np.zeros((12, 20, 20), dtype=np.int16)  # a stored anomaly map at half the resolution
    error[7:10, 10:13, 5:8] = 600
    error[8, 11, 6] = 700  # its peak
    assert key_slice((24, 40, 40), error) == 17  # (8 + 0.5) × 24 / 12, on the stored grid
    assert key_slice((24, 40, 40), error, hot_z=5) == 5  # the region `ctae score` stored wins
    assert key_slice((24, 40, 40), error, hot_z=99) == 23  # clipped to the volume
    assert key_slice((24, 40, 40), None) == 12


def test_montage_shows_flagged_scans_and_opens_the_viewer(catalog, open_page):
    with connect(catalog.catalog_path, read_only=True) as con:
        scans = views.scan_table(con, "synthetic")
    flagged = scans[scans["is_outlier"].fillna(False).astype(bool)]["scan_id"].tolist()
    at = open_page(catalog, "explorer")
    assert not [b for b in at.button if b.key and b.key.startswith("montage_")]  # lazy section
    at.toggle(key="explorer_montage").set_value(True).run()
    montage = [img for img in at.get("image") if "· z " in img.proto.imgs[0].caption]
    assert len(montage) == min(40, len(flagged)) > 0
    buttons = [b for b in at.button if b.key and b.key.startswith("montage_")]
    assert [b.key for b in buttons] == [f"montage_{s}" for s in flagged[:40]]
    buttons[1].click().run()
    assert at.session_state["selected_scans"] == flagged[:40]
    assert at.session_state["queue_pos"] == 1
    assert at.subheader[0].value == f"Scan `{flagged[1]}`"
