"""Inliers from a real volume: the same patient and kernel, re-posed, re-sized, re-cropped and
re-noised within what real archives hold.

A variant samples the base on a new grid (linear interpolation, no smoothing, so the kernel's
noise texture stays): a new in-plane pixel spacing and field of view, a new slice spacing, a
z-range cut from the base, the patient rotated, shifted and scaled in the plane, extra
acquisition noise (a lower dose), and a contrast phase a little earlier or later.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

AIR = -1024.0
"""What lies outside the base's field of view."""
PIXEL_MM = (1.4, 2.4)
"""Written in-plane pixel spacing: a full-size scan's 0.6–0.9 mm would only slow the cohort,
and ingest resamples to 3 mm anyway."""
FOV_FACTOR = (0.92, 1.12)
"""Written field of view relative to the base's."""
SLICE_MM = (2.0, 2.5, 3.0, 5.0)
"""Written slice spacings (never finer than the base's)."""
Z_KEEP = (0.6, 1.0)
"""Share of the base's z extent a variant keeps."""
MIN_Z_MM = 36.0
ROTATION_DEG = 6.0
SHIFT_MM = 25.0
SCALE = (0.92, 1.08)
EXTRA_NOISE_HU = (0.0, 12.0)
"""Extra acquisition noise (SD) of a variant, smoothed like a soft kernel's."""
ENHANCEMENT_HU = (100.0, 500.0)
"""HU band a contrast phase stretches; scaled by ``PHASE``."""
PHASE = (0.85, 1.15)
TRUNK_MIN_WIDTH_MM = 250.0
"""A body narrower than this (median over slices) is a head or neck, not a chest or abdomen."""
REGION_BODY_HU = -300.0


@dataclass(frozen=True)
class Rendered:
    """A written volume: HU (Z, Y, X) on an identity-direction grid with this spacing."""

    hu: np.ndarray
    spacing_zyx_mm: tuple[float, float, float]


def body_region(hu: np.ndarray, spacing_zyx_mm: tuple[float, float, float]) -> str:
    """``trunk`` or ``head_neck`` of a (Z, Y, X) HU volume, from the body's median width."""
    widths = []
    for plane in hu[:: max(1, hu.shape[0] // 16)]:
        cols = np.nonzero((plane > REGION_BODY_HU).sum(axis=0) > 3)[0]
        if cols.size:
            widths.append((cols[-1] - cols[0] + 1) * spacing_zyx_mm[2])
    return "trunk" if widths and float(np.median(widths)) >= TRUNK_MIN_WIDTH_MM else "head_neck"


def enhanced_blood_share(hu: np.ndarray) -> float:
    """Share of 0–450 HU voxels that lie at 150–450 HU: high in a contrast-enhanced scan."""
    soft = np.count_nonzero((hu > 0) & (hu < 450))
    return float(np.count_nonzero((hu > 150) & (hu < 450)) / max(soft, 1))


def render_variant(
    base_hu: np.ndarray, base_spacing_zyx_mm: tuple[float, float, float], rng: np.random.Generator,
) -> Rendered:
    """A new acquisition of the base patient (module docstring), as a float32 HU volume."""
    sz_b, sy_b, sx_b = (float(s) for s in base_spacing_zyx_mm)
    nz_b, ny_b, nx_b = base_hu.shape
    pixel = float(rng.uniform(*PIXEL_MM))
    fov = max(ny_b * sy_b, nx_b * sx_b) * float(rng.uniform(*FOV_FACTOR))
    n_xy = int(np.clip(round(fov / pixel), 96, 320))
    slice_mm = max(float(rng.choice(SLICE_MM)), sz_b)
    extent = (nz_b - 1) * sz_b
    keep = min(extent, max(MIN_Z_MM, extent * float(rng.uniform(*Z_KEEP))))
    z0 = float(rng.uniform(0.0, extent - keep)) if extent > keep else 0.0
    n_z = max(8, int(keep // slice_mm) + 1)
    z_index = np.clip((z0 + np.arange(n_z) * slice_mm) / sz_b, 0, nz_b - 1)

    angle = np.deg2rad(rng.uniform(-ROTATION_DEG, ROTATION_DEG))
    scale = float(rng.uniform(*SCALE))
    shift = rng.uniform(-SHIFT_MM, SHIFT_MM, size=2)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]) / scale
    to_base = np.diag([1.0 / sy_b, 1.0 / sx_b])
    matrix = to_base @ rot * pixel
    centre_out = np.full(2, (n_xy - 1) / 2.0)
    centre_in = np.array([(ny_b - 1) / 2.0, (nx_b - 1) / 2.0])
    offset = centre_in - matrix @ centre_out - to_base @ rot @ shift

    out = np.empty((n_z, n_xy, n_xy), dtype=np.float32)
    low = np.floor(z_index).astype(int)
    high = np.minimum(low + 1, nz_b - 1)
    frac = (z_index - low).astype(np.float32)
    for k in range(n_z):
        plane = (1 - frac[k]) * base_hu[low[k]].astype(np.float32) + frac[k] * base_hu[high[k]]
        out[k] = ndimage.affine_transform(plane, matrix, offset, output_shape=(n_xy, n_xy),
                                          order=1, cval=AIR)
    phase = float(rng.uniform(*PHASE))
    lo, hi = ENHANCEMENT_HU
    band = (out > lo) & (out < hi)
    out[band] = lo + (out[band] - lo) * phase
    sd = float(rng.uniform(*EXTRA_NOISE_HU))
    if sd > 0.5:
        noise = ndimage.gaussian_filter(rng.standard_normal(out.shape, dtype=np.float32), (0, 0.7, 0.7))
        out += noise * np.float32(sd / max(float(noise.std()), 1e-6))
    return Rendered(out, (slice_mm, pixel, pixel))


def canonical_planes(hu: np.ndarray, spacing_zyx_mm: tuple[float, float, float],
                     direction: tuple[float, ...]) -> tuple[np.ndarray, tuple[float, float, float]] | None:
    """(Z, Y, X) array and spacing in canonical orientation (x left, y posterior, z superior)
    by axis flips and swaps alone; None for an oblique or tilted direction."""
    d = np.asarray(direction, dtype=float).reshape(3, 3)
    patient_axis = np.abs(d).argmax(axis=0)  # for array axes (x, y, z)
    if sorted(patient_axis.tolist()) != [0, 1, 2] or (np.abs(d).max(axis=0) < 0.999).any():
        return None
    spacing_xyz = np.asarray(spacing_zyx_mm, dtype=float)[::-1]
    np_axis = {0: 2, 1: 1, 2: 0}  # array axis x, y, z -> numpy axis
    order = [np_axis[int(np.nonzero(patient_axis == p)[0][0])] for p in (2, 1, 0)]
    out = np.transpose(hu, order)
    for numpy_axis, p in enumerate((2, 1, 0)):
        i = int(np.nonzero(patient_axis == p)[0][0])
        if d[p, i] < 0:
            out = np.flip(out, axis=numpy_axis)
    spacing = tuple(float(spacing_xyz[int(np.nonzero(patient_axis == p)[0][0])]) for p in (2, 1, 0))
    return np.ascontiguousarray(out), spacing  # type: ignore[return-value]
