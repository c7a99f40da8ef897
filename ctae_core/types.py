"""Shared type aliases. Arrays are (Z, Y, X) = (plane, row, column); spacing is in mm."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

HUArray = npt.NDArray[np.int16]
"""int16 Hounsfield units, shape (Z, Y, X)."""

FloatVolume = npt.NDArray[np.float32]
"""float32 volume, shape (Z, Y, X)."""

SpacingZYX = tuple[float, float, float]
"""Voxel spacing in mm, in (Z, Y, X) order (SimpleITK uses (X, Y, Z): convert at the edge)."""

SizeZYX = tuple[int, int, int]
