"""Where the slices of a DICOM series lie: order, duplicates, gaps and gantry tilt.

Pure numpy on (ImagePositionPatient, ImageOrientationPatient, InstanceNumber); no file access.
Positions are in patient (LPS) millimetres.

Missing-slice rule (documented for ``ingest``): gaps are measured along the slice-stacking
direction. A gap counts ``round(gap / local_step) - 1`` missing slices when it exceeds 1.5× the
local step (the median of the 7 gaps around it), and ``ΔInstanceNumber - 1`` when instance
numbers run monotonically with position; the larger estimate wins. A series is refused when
more than ``max(2, 5 %)`` of its expected slices are missing (see ``missing_slice_limit``);
up to that many are filled by linear interpolation between the neighbouring slices.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

DUPLICATE_TOLERANCE_MM = 0.01
"""Slices closer than this along the stacking direction are at the same position."""

TILT_TOLERANCE_DEG = 0.05
"""Smaller angles between stacking direction and slice normal are rounding, not tilt."""

MISSING_SLICE_FRACTION = 0.05
MISSING_SLICE_MIN_ALLOWED = 2


@dataclass(frozen=True)
class SliceLayout:
    """The stacking of a series' slices after sorting along the slice normal.

    Attributes:
        order: Indices into the input slices, sorted by position (duplicates included).
        offsets_mm: Position of each sorted slice along ``step_direction``, first slice at 0.
        step_direction: Unit vector (LPS) from the first to the last sorted slice.
        normal: Unit slice normal, row × column direction cosines.
        tilt_deg: Angle between ``step_direction`` and ``normal`` (gantry tilt), degrees.
        reversed_instances: InstanceNumber decreases as the position increases.
    """

    order: np.ndarray
    offsets_mm: np.ndarray
    step_direction: np.ndarray
    normal: np.ndarray
    tilt_deg: float
    reversed_instances: bool


def slice_normal(orientation: np.ndarray) -> np.ndarray:
    """Unit normal of the image plane from the 6 ImageOrientationPatient cosines."""
    row, col = np.asarray(orientation[:3], float), np.asarray(orientation[3:6], float)
    normal = np.cross(row, col)
    return normal / np.linalg.norm(normal)


def layout_slices(
    positions: np.ndarray, orientation: np.ndarray, instances: np.ndarray | None
) -> SliceLayout:
    """Sort slices along the normal and measure the stacking direction and tilt.

    Args:
        positions: ImagePositionPatient of each slice, shape (N, 3), mm.
        orientation: The series' ImageOrientationPatient, shape (6,).
        instances: InstanceNumber of each slice, shape (N,), or None when absent.
    """
    normal = slice_normal(orientation)
    along_normal = positions @ normal
    order = np.argsort(along_normal, kind="stable")
    first, last = positions[order[0]], positions[order[-1]]
    span = last - first
    if np.linalg.norm(span) < DUPLICATE_TOLERANCE_MM:
        step_direction = normal
    else:
        step_direction = span / np.linalg.norm(span)
    cos_tilt = float(np.clip(abs(step_direction @ normal), -1.0, 1.0))
    tilt = math.degrees(math.acos(cos_tilt))
    offsets = (positions[order] - first) @ step_direction
    reversed_instances = False
    if instances is not None and len(order) > 1:
        sorted_instances = instances[order]
        reversed_instances = bool(sorted_instances[0] > sorted_instances[-1])
    return SliceLayout(
        order=order,
        offsets_mm=offsets,
        step_direction=step_direction,
        normal=normal,
        tilt_deg=tilt if tilt > TILT_TOLERANCE_DEG else 0.0,
        reversed_instances=reversed_instances,
    )


def duplicate_groups(offsets_mm: np.ndarray) -> list[list[int]]:
    """Runs of sorted slices at the same position, as lists of indices into ``offsets_mm``."""
    groups: list[list[int]] = [[0]]
    for k in range(1, len(offsets_mm)):
        if offsets_mm[k] - offsets_mm[groups[-1][0]] < DUPLICATE_TOLERANCE_MM:
            groups[-1].append(k)
        else:
            groups.append([k])
    return groups


def local_steps(gaps_mm: np.ndarray, half_window: int = 3) -> np.ndarray:
    """Median of the gaps around each gap: the slice step a series has at that place."""
    steps = np.empty_like(gaps_mm)
    width = 2 * half_window + 1
    inner = range(half_window, len(gaps_mm) - half_window)
    if len(inner) and np.isfinite(gaps_mm).all():  # whole windows at once (np.median: NaN)
        windows = np.lib.stride_tricks.sliding_window_view(gaps_mm, width)
        steps[inner.start : inner.stop] = np.sort(windows, axis=1)[:, half_window]
    else:
        inner = range(0)
    for i in range(len(gaps_mm)):
        if i not in inner:
            steps[i] = median(gaps_mm[max(0, i - half_window) : i + half_window + 1])
    return steps


def median(values: np.ndarray) -> float:
    """``np.median`` of a 1-D array, the same number, without its per-call overhead (the gap
    medians were a call per slice: ~7 ms of a 99-slice series) or the masked-array module it
    imports to look for NaN (``np.percentile`` in the statistics still imports it)."""
    values = np.asarray(values, dtype=float)
    if values.size == 0 or not np.isfinite(values).all():
        return float(np.median(values))
    ordered = np.sort(values)
    mid = values.size // 2
    if values.size % 2:
        return float(ordered[mid])
    return float((ordered[mid - 1] + ordered[mid]) / 2)


def missing_per_gap(gaps_mm: np.ndarray, instance_jumps: np.ndarray | None) -> np.ndarray:
    """Estimated number of missing slices inside each gap (see the module docstring)."""
    steps = local_steps(gaps_mm)
    ratio = gaps_mm / np.maximum(steps, 1e-6)
    by_spacing = np.where(ratio > 1.5, np.rint(ratio) - 1, 0).astype(int)
    if instance_jumps is None:
        return by_spacing
    by_instance = np.maximum(np.abs(instance_jumps) - 1, 0).astype(int)
    return np.maximum(by_spacing, by_instance)


def monotone_instance_jumps(sorted_instances: np.ndarray | None) -> np.ndarray | None:
    """Instance-number steps between neighbours, when they run monotonically; else None."""
    if sorted_instances is None or len(sorted_instances) < 2:
        return None
    jumps = np.diff(sorted_instances.astype(np.int64))
    if np.all(jumps > 0) or np.all(jumps < 0):
        return jumps
    return None


def missing_slice_limit(n_expected: int) -> int:
    """How many missing slices a series of ``n_expected`` slices may have and still be used."""
    return max(MISSING_SLICE_MIN_ALLOWED, int(MISSING_SLICE_FRACTION * n_expected))


def regular_offsets(offsets_mm: np.ndarray, step_mm: float) -> np.ndarray:
    """Evenly spaced positions from the first to the last slice, ``step_mm`` apart (or less)."""
    extent = float(offsets_mm[-1] - offsets_mm[0])
    n_planes = max(2, int(round(extent / step_mm)) + 1)
    return np.linspace(float(offsets_mm[0]), float(offsets_mm[-1]), n_planes)


def interpolate_planes(
    planes: np.ndarray, offsets_mm: np.ndarray, targets_mm: np.ndarray
) -> np.ndarray:
    """Linearly interpolate (N, Y, X) planes at sorted ``offsets_mm`` onto ``targets_mm``.

    Returns float32 of shape (len(targets_mm), Y, X).
    """
    out = np.empty((len(targets_mm),) + planes.shape[1:], dtype=np.float32)
    upper = np.clip(np.searchsorted(offsets_mm, targets_mm, side="left"), 1, len(offsets_mm) - 1)
    for i, (t, k) in enumerate(zip(targets_mm, upper, strict=True)):
        lo, hi = offsets_mm[k - 1], offsets_mm[k]
        w = 0.0 if hi <= lo else float(np.clip((t - lo) / (hi - lo), 0.0, 1.0))
        if w <= 1e-6:
            out[i] = planes[k - 1]
        elif w >= 1 - 1e-6:
            out[i] = planes[k]
        else:
            out[i] = (1 - w) * planes[k - 1] + w * planes[k]
    return out
