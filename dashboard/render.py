"""Render the viewer's images for one set of slice positions (pure, timed by the benchmark).

The original is shown at the stored spacing; the reconstruction and |error| (stored at the run's
spacing, possibly coarser) are cut at the same physical position and resampled nearest-neighbour
onto the original's slice grid, so that the overlay lines up.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dashboard import slices


@dataclass(frozen=True)
class ViewSettings:
    """How to draw: HU window, overlay opacity and the |error| that saturates the colour."""

    width_hu: float = 400.0
    level_hu: float = 40.0
    opacity: float = 0.4
    error_max_hu: float = 300.0


@dataclass(frozen=True)
class PlaneImages:
    """PNG bytes of one plane: original (with overlay when there is an error volume) and run's."""

    original: bytes
    reconstruction: bytes | None
    error: bytes | None


def _run_slice(
    run_volume: np.ndarray,
    plane: str,
    index: int,
    shape: tuple[int, int],
    scan_shape: tuple[int, ...],
    scan_spacing_mm: float,
    run_spacing_mm: float,
) -> np.ndarray:
    axis = slices.plane_axis(plane)
    run_spacing_mm = slices.layer_spacing_mm(run_volume.shape, scan_shape, scan_spacing_mm, run_spacing_mm)
    run_index = slices.map_index(index, scan_spacing_mm, run_spacing_mm, run_volume.shape[axis])
    cut = slices.extract_slice(run_volume, plane, run_index)
    if cut.shape == shape and scan_spacing_mm == run_spacing_mm:
        return cut
    return slices.resample_nearest(cut, shape, run_spacing_mm, scan_spacing_mm)


def render_plane(
    volume: np.ndarray,
    plane: str,
    index: int,
    view: ViewSettings,
    *,
    recon: np.ndarray | None = None,
    error: np.ndarray | None = None,
    region: np.ndarray | None = None,
    scan_spacing_mm: float = 3.0,
    run_spacing_mm: float = 3.0,
) -> PlaneImages:
    """PNG images of one plane of the scan and, when given, its reconstruction and |error|, with
    the outline of ``region`` (the hottest |error| region's mask, on the map's grid). Each is on
    the run's grid (``run_spacing_mm``) unless it has the scan's shape (a map made on the stored
    grid)."""
    cut = slices.extract_slice(volume, plane, index)
    grey = slices.window_to_uint8(cut, view.width_hu, view.level_hu)
    recon_png = error_png = None
    if recon is not None:
        recon_cut = _run_slice(recon, plane, index, cut.shape, volume.shape, scan_spacing_mm, run_spacing_mm)
        recon_png = slices.to_png(slices.window_to_uint8(recon_cut, view.width_hu, view.level_hu))
    if error is not None:
        error_cut = _run_slice(error, plane, index, cut.shape, volume.shape, scan_spacing_mm, run_spacing_mm)
        error_png = slices.to_png(slices.heat_uint8(error_cut, view.error_max_hu))
        if view.opacity > 0:
            grey = slices.error_overlay(grey, error_cut, view.opacity, view.error_max_hu)
    if region is not None:
        cut_region = _run_slice(region, plane, index, cut.shape, volume.shape, scan_spacing_mm, run_spacing_mm)
        grey = slices.draw_outline(grey, cut_region)
    return PlaneImages(slices.to_png(grey), recon_png, error_png)


def render_views(
    volume: np.ndarray,
    indices_zyx: tuple[int, int, int],
    view: ViewSettings,
    **run_volumes,
) -> dict[str, PlaneImages]:
    """All three planes at slice indices (z, y, x) of the stored volume."""
    return {
        plane: render_plane(volume, plane, index, view, **run_volumes)
        for plane, index in zip(slices.PLANES, indices_zyx, strict=True)
    }
