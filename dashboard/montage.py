"""A montage of the run's flagged scans: one axial key slice each, cut through the hottest
region of its anomaly map (stored by `ctae score`), with the anomaly map overlaid; a click
opens the scan in the viewer, the montage's scans as the review queue."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from ctae_core.anomaly_map import hottest_region_mask
from ctae_core.io.volume_store import VOLUME_UNREADABLE
from dashboard import data, state
from dashboard.render import ViewSettings, render_plane

MONTAGE_SCANS = 40
COLUMNS = 8
MONTAGE_VIEW = ViewSettings(width_hu=400.0, level_hu=40.0, opacity=0.5, error_max_hu=300.0)


def key_slice(volume_shape_zyx: tuple[int, ...], error: np.ndarray | None,
              hot_z: int | None = None) -> int:
    """The stored volume's axial slice through the hottest region: the one `ctae score` stored
    (``hot_z``, on the stored grid), else the peak of the stored anomaly map, as the viewer
    finds it for runs from before schema v8 (middle slice when the run kept no map)."""
    if hot_z is not None:
        return int(min(max(hot_z, 0), volume_shape_zyx[0] - 1))
    if error is None:
        return volume_shape_zyx[0] // 2
    z = hottest_region_mask(error)[1][0]
    return int(min((z + 0.5) * volume_shape_zyx[0] / error.shape[0], volume_shape_zyx[0] - 1))


@st.cache_data(max_entries=512, show_spinner=False)
def key_slice_image(volume_path: str, error_path: str | None, spacing_mm: float,
                    run_spacing_mm: float, hot_z: int | None = None) -> tuple[bytes, int, bool]:
    """(PNG of the key slice with the |error| overlay, its index, whether an |error| was kept)."""
    volume = data.volume(volume_path)
    error = None
    if error_path:
        try:
            error = data.volume(error_path)
        except VOLUME_UNREADABLE:
            error = None
    z = key_slice(volume.shape, error, hot_z)
    image = render_plane(volume, "axial", z, MONTAGE_VIEW, error=error,
                         scan_spacing_mm=spacing_mm, run_spacing_mm=run_spacing_mm)
    return image.original, z, error is not None


def _open(scan_ids: list[str], position: int) -> None:
    state.select_scans(scan_ids)
    st.session_state[state.QUEUE_POS] = position


def flagged_montage(catalog: str, run_id: str, run_spacing_mm: float | None) -> None:
    """The top ``MONTAGE_SCANS`` flagged scans by score, ``COLUMNS`` to a row, each openable."""
    scans = data.scan_table(catalog, run_id)
    flagged: pd.DataFrame = scans[scans["is_outlier"].fillna(False).astype(bool)].head(MONTAGE_SCANS)
    if flagged.empty:
        st.caption("No scan of this run is flagged.")
        return
    ids = flagged["scan_id"].tolist()
    st.caption(
        f"The {len(ids)} highest-scoring flagged scans: the axial slice through each one's "
        "hottest |error| region. Open one to review them in this order."
    )
    for start in range(0, len(ids), COLUMNS):
        for col, (i, row) in zip(st.columns(COLUMNS), enumerate(flagged.iloc[start:start + COLUMNS].itertuples(), start), strict=False):
            try:
                png, z, hot = key_slice_image(row.volume_path, row.error_path or None,
                                              float(row.spacing_mm), float(run_spacing_mm or row.spacing_mm),
                                              None if pd.isna(row.hot_z) else int(row.hot_z))
            except VOLUME_UNREADABLE as err:
                col.caption(f"`{row.scan_id}`: stored volume "
                            + ("missing" if isinstance(err, FileNotFoundError) else "damaged"))
                continue
            label = f" · {row.label}" if isinstance(row.label, str) else ""
            col.image(png, caption=f"{row.scan_id[:10]} · {row.score:.3g}{label} · z {z}"
                      + ("" if hot else " (no |error| kept)"), width="stretch")
            if col.button("Open", key=f"montage_{row.scan_id}", on_click=_open, args=(ids, i)):
                st.switch_page("app_pages/viewer.py")
