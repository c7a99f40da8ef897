"""Scans binned on a 2-D grid for the explorer's density layer, and the scans inside a box or
lasso drawn over it (pure numpy, no Streamlit).

A scatter of 100k–1M markers cannot be seen point by point and costs megabytes of figure JSON
and seconds of drawing; counts per cell cost a few kilobytes whatever the catalog's size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

GRID_CELLS = (128, 96)
"""Cells along x and y: about 5 screen pixels each on the explorer's half-width plots."""


@dataclass(frozen=True)
class Density:
    """Scan counts per grid cell.

    Attributes:
        counts: int64 (ny, nx), scans per cell (rows: y from low to high).
        x_centres, y_centres: Cell centres in data units (log-spaced along y when ``log_y``).
        log_y: The y cells are equal in log10(y) (a log score axis).
        n_binned: Scans counted (finite, and positive when ``log_y``).
    """

    counts: np.ndarray
    x_centres: np.ndarray
    y_centres: np.ndarray
    log_y: bool
    n_binned: int


def _edges(values: np.ndarray, n: int) -> np.ndarray:
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 1.0)
    if high <= low:  # one value: a cell around it
        low, high = low - 0.5, high + 0.5
    return np.linspace(low, high, n + 1)


def _cell(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Cell index of each value; the top edge belongs to the last cell."""
    width = edges[1] - edges[0]
    index = ((values - edges[0]) / width).astype(np.int64)
    return np.clip(index, 0, len(edges) - 2)


def bin_counts(
    x: np.ndarray, y: np.ndarray, *, log_y: bool = False, cells: tuple[int, int] = GRID_CELLS
) -> Density:
    """Counts of the points (x, y) on a ``cells`` (nx, ny) grid spanning their range.

    Non-finite points, and with ``log_y`` points with y <= 0 (a log axis cannot show them), are
    left out. ``np.bincount`` on cell indices: ~10× faster than ``np.histogram2d`` at 1M.
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    keep = np.isfinite(x) & np.isfinite(y)
    if log_y:
        keep &= y > 0
    x, y = x[keep], y[keep]
    if log_y:
        y = np.log10(y)
    nx, ny = cells
    x_edges, y_edges = _edges(x, nx), _edges(y, ny)
    flat = _cell(y, y_edges) * nx + _cell(x, x_edges)
    counts = np.bincount(flat, minlength=nx * ny).reshape(ny, nx)
    y_centres = (y_edges[:-1] + y_edges[1:]) / 2
    return Density(
        counts=counts,
        x_centres=(x_edges[:-1] + x_edges[1:]) / 2,
        y_centres=10**y_centres if log_y else y_centres,
        log_y=log_y,
        n_binned=int(keep.sum()),
    )


def in_selection(x: np.ndarray, y: np.ndarray, event: Any) -> np.ndarray:
    """Which points (x, y) lie inside the brushed areas of an ECharts chart's selection event.

    ``event`` is Streamlit's selection event (or AppTest's plain dict) whose ``selection.areas``
    hold ``{"brush_type": "rect", "coord_range": [[x0, x1], [y0, y1]]}`` or ``{"brush_type":
    "polygon", "coord_range": [[x, y], …]}`` in data units; other brush types are not offered by
    the toolbox and select nothing.
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    inside = np.zeros(len(x), dtype=bool)
    for area in ((event or {}).get("selection") or {}).get("areas") or []:
        coords = area.get("coord_range") or []
        if area.get("brush_type") == "rect" and len(coords) == 2:
            (x0, x1), (y0, y1) = sorted(coords[0][:2]), sorted(coords[1][:2])
            inside |= (x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)
        elif area.get("brush_type") == "polygon" and coords:
            inside |= _in_polygon(x, y, np.array([c[0] for c in coords], float),
                                  np.array([c[1] for c in coords], float))
    return inside


def _in_polygon(x: np.ndarray, y: np.ndarray, px: np.ndarray, py: np.ndarray) -> np.ndarray:
    """Even-odd rule: a point is inside when a ray to its right crosses the outline oddly often."""
    inside = np.zeros(len(x), dtype=bool)
    if len(px) < 3:
        return inside
    for x0, y0, x1, y1 in zip(px, py, np.roll(px, -1), np.roll(py, -1), strict=True):
        if y0 == y1:
            continue  # a horizontal edge is never crossed by a horizontal ray
        straddles = (y0 > y) != (y1 > y)
        crossing_x = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
        inside ^= straddles & (x < crossing_x)
    return inside
