"""The hottest region of a scan's anomaly map as a 3-D mask, for the viewer to outline on each
plane: the connected voxels around its hottest voxel (``ctae_core.anomaly.hottest_voxel``) whose
|error| stays above a fraction of the box-smoothed peak."""

from __future__ import annotations

import numpy as np

from ctae_core.anomaly import SMOOTHING_VOXELS, hottest_voxel

REGION_FRACTION = 0.5
"""A voxel belongs to the region while its smoothed |error| is at least this share of the peak's
(the half-maximum contour, as a spot's extent is measured)."""


def hottest_region(
    error_zyx: np.ndarray, size: int = SMOOTHING_VOXELS, fraction: float = REGION_FRACTION
) -> np.ndarray:
    """Boolean mask (Z, Y, X) of the hottest |error| region: the 26-connected voxels around
    :func:`hottest_voxel` whose |error| is ≥ ``fraction`` of the box-smoothed |error| there
    (the smoothed map itself where the centre voxel is below that: a hot ring).

    Args:
        error_zyx: |error| volume (Z, Y, X), any numeric dtype (a memory map is fine).
        size: Box side in voxels (clipped to the volume's smallest side).
        fraction: Share of the peak's smoothed |error| that bounds the region, in (0, 1].
    """
    from scipy.ndimage import label, uniform_filter

    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], not {fraction}")
    seed = hottest_voxel(error_zyx, size)
    error = np.asarray(error_zyx, dtype=np.float32)
    smooth = uniform_filter(error, size=max(1, min(size, *error.shape)), mode="nearest")
    peak = float(smooth[seed])
    if peak <= 0:
        return np.zeros(error.shape, dtype=bool)
    hot = error >= fraction * peak  # the raw map keeps the spot's full extent
    if not hot[seed]:
        hot = smooth >= fraction * peak
    parts, _ = label(hot, structure=np.ones((3, 3, 3), dtype=bool))
    return parts == parts[seed]
