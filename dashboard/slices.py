"""Pure numpy helpers of the scan viewer: slice extraction, HU windows, error overlay, PNG.

Arrays are (Z, Y, X) int16 HU, isotropic. Coronal and sagittal slices are flipped so that
the highest z (superior, in DICOM's LPS patient frame) is at the top of the image.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

WINDOW_PRESETS: dict[str, tuple[float, float]] = {
    "soft tissue": (400.0, 40.0),
    "lung": (1500.0, -600.0),
    "bone": (1800.0, 400.0),
    "metal": (4000.0, 1000.0),
}
"""Window (width, level) in HU per preset name."""

HU_HISTOGRAM_EDGES = np.arange(-1024, 3073, 64)
"""65 edges of the 64 HU bins of ``scans.hu_histogram``: −1024 to 3072 HU, step 64."""

PLANES = ("axial", "coronal", "sagittal")
_PLANE_AXIS = {"axial": 0, "coronal": 1, "sagittal": 2}


def plane_axis(plane: str) -> int:
    """The array axis a plane cuts: axial → 0 (Z), coronal → 1 (Y), sagittal → 2 (X)."""
    if plane not in _PLANE_AXIS:
        raise ValueError(f"plane {plane!r} must be one of {list(PLANES)}")
    return _PLANE_AXIS[plane]


def extract_slice(volume: np.ndarray, plane: str, index: int) -> np.ndarray:
    """One 2-D slice of a (Z, Y, X) volume, reading only that slice from a memory map.

    Returns:
        Array of shape (Y, X) for axial, (Z, X) for coronal, (Z, Y) for sagittal; the last two
        flipped vertically so that superior is up.
    """
    axis = plane_axis(plane)
    index = int(np.clip(index, 0, volume.shape[axis] - 1))
    cut = np.asarray(np.take(volume, index, axis=axis))
    return cut if axis == 0 else cut[::-1]


def map_index(index: int, from_spacing_mm: float, to_spacing_mm: float, to_size: int) -> int:
    """The voxel index on another grid at the same physical position (voxel centres).

    >>> map_index(5, 3.0, 6.0, 10)   # centre 16.5 mm lies in the 6 mm voxel [12, 18)
    2
    """
    position_mm = (index + 0.5) * from_spacing_mm
    return int(np.clip(np.floor(position_mm / to_spacing_mm), 0, to_size - 1))


def layer_spacing_mm(layer_shape: tuple[int, ...], scan_shape: tuple[int, ...], scan_spacing_mm: float,
                     run_spacing_mm: float) -> float:
    """The spacing a run's layer (reconstruction, anomaly map, region) lies on: the stored scan's
    when it has the scan's shape (a coarser run's anomaly map, made on the stored grid), else
    the run's."""
    return scan_spacing_mm if tuple(layer_shape) == tuple(scan_shape) else run_spacing_mm


def resample_nearest(
    image: np.ndarray, out_shape: tuple[int, int], in_spacing_mm: float, out_spacing_mm: float
) -> np.ndarray:
    """Nearest-neighbour resampling of a 2-D slice onto a finer or coarser grid, by position."""
    rows = [
        map_index(i, out_spacing_mm, in_spacing_mm, image.shape[0]) for i in range(out_shape[0])
    ]
    cols = [
        map_index(j, out_spacing_mm, in_spacing_mm, image.shape[1]) for j in range(out_shape[1])
    ]
    return image[np.ix_(rows, cols)]


def window_to_uint8(hu: np.ndarray, width_hu: float, level_hu: float) -> np.ndarray:
    """Map HU to grey levels 0–255 through a window of ``width_hu`` centred on ``level_hu``.

    >>> window_to_uint8(np.array([-1000, 40, 1000]), 400, 40).tolist()
    [0, 128, 255]
    """
    if width_hu <= 0:
        raise ValueError(f"window width must be > 0 HU, got {width_hu}")
    low = level_hu - width_hu / 2
    scaled = (np.asarray(hu, dtype=np.float32) - low) * (255.0 / width_hu)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def error_overlay(
    grey: np.ndarray, error_hu: np.ndarray, opacity: float, error_max_hu: float
) -> np.ndarray:
    """Blend |error| in red over a grey image; returns RGB uint8 of shape (H, W, 3).

    Each pixel's red weight is ``opacity * min(error / error_max_hu, 1)``.
    """
    if grey.shape != error_hu.shape:
        raise ValueError(f"overlay shape {error_hu.shape} differs from the image's {grey.shape}")
    alpha = opacity * np.clip(error_hu.astype(np.float32) / max(error_max_hu, 1.0), 0.0, 1.0)
    rgb = np.repeat(grey[..., None].astype(np.float32), 3, axis=2)
    rgb[..., 0] = rgb[..., 0] * (1 - alpha) + 255.0 * alpha
    rgb[..., 1:] *= (1 - alpha)[..., None]
    return rgb.astype(np.uint8)


REGION_RGB = (0, 230, 255)
"""Colour of the hottest region's outline (cyan: apart from the red-yellow |error|)."""


def outline(mask: np.ndarray) -> np.ndarray:
    """The contour of a 2-D mask: its pixels with a 4-neighbour outside it (or on the edge)."""
    inside = np.asarray(mask, dtype=bool)
    padded = np.pad(inside, 1, constant_values=False)
    interior = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return inside & ~interior


def draw_outline(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """A grey (H, W) or RGB (H, W, 3) uint8 image with the mask's contour drawn in
    ``REGION_RGB``; returns RGB."""
    rgb = np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image.copy()
    rgb[outline(mask)] = REGION_RGB
    return rgb


def heat_uint8(error_hu: np.ndarray, error_max_hu: float) -> np.ndarray:
    """|error| as a black→red→yellow heat image, RGB uint8 of shape (H, W, 3)."""
    t = np.clip(error_hu.astype(np.float32) / max(error_max_hu, 1.0), 0.0, 1.0)
    rgb = np.stack([np.clip(2 * t, 0, 1), np.clip(2 * t - 1, 0, 1), np.zeros_like(t)], axis=2)
    return (rgb * 255).astype(np.uint8)


def to_png(image: np.ndarray) -> bytes:
    """Encode a grey (H, W) or RGB (H, W, 3) uint8 image as PNG bytes (fast, no compression)."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def histogram_fractions(counts: list[int] | np.ndarray) -> np.ndarray:
    """Histogram counts → fractions of the total (all zeros when the total is zero)."""
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    return counts / total if total > 0 else counts
