"""Where a scan's anomaly map (the run's voxel-wise |error|) is hottest."""

from __future__ import annotations

import numpy as np

SMOOTHING_VOXELS = 3
"""Side of the box the |error| is averaged over: one hot voxel is noise, a hot region is not."""


def hottest_voxel(error_zyx: np.ndarray, size: int = SMOOTHING_VOXELS) -> tuple[int, int, int]:
    """(z, y, x) of the largest box-smoothed |error| — the centre of the hottest region.

    Args:
        error_zyx: |error| volume (Z, Y, X), any numeric dtype (a memory map is fine).
        size: Box side in voxels (clipped to the volume's smallest side).
    """
    from scipy.ndimage import uniform_filter

    error = np.asarray(error_zyx, dtype=np.float32)
    if error.size == 0:
        raise ValueError("the |error| volume is empty")
    size = max(1, min(size, *error.shape))
    smooth = uniform_filter(error, size=size, mode="nearest")
    return tuple(int(i) for i in np.unravel_index(int(np.argmax(smooth)), smooth.shape))  # type: ignore[return-value]
