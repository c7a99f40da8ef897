"""Anomalies inserted into a real-anatomy variant, each with its own realistic physics and no
code or constant shared with the evidence code: metal with the HU a 12-bit scanner stores
(saturating at 3071) and beam-hardening streaks, leads, cables, electrodes, valves, foreign
objects, noise, a truncated field of view, a wrong rescale intercept, a missing slab, ring and
streak artefacts, missing contrast. Local objects come with a voxel mask on the written grid.

``strength`` in [0, 1] runs from subtle to obvious for every type.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

METAL_MAX_HU = 3071.0
"""Where a 12-bit CT stores saturate: steel, titanium and copper all land near it."""
SKIN_HU = -400.0
"""Skin / air boundary used to place objects on or in the body."""
LOCAL_TYPES = (
    "spinal_hardware", "pacemaker", "external_cable", "ecg_electrodes", "heart_valve",
    "foreign_object",
)
GLOBAL_TYPES = (
    "heavy_noise", "fov_truncation", "wrong_rescale", "missing_slab", "wrong_body_region",
    "non_contrast", "streak_artefact", "ring_artefact",
)
ANOMALY_TYPES = LOCAL_TYPES + GLOBAL_TYPES
OTHER_REGION_TYPES = ("wrong_body_region",)
"""Types drawn on a base of another body region (a head-neck scan in a trunk cohort)."""
NEEDS_CONTRAST = ("non_contrast",)


@dataclass(frozen=True)
class Inserted:
    """A variant with its anomaly: HU, the object's voxel mask (None for a global anomaly),
    planes the series loses, and the rescale intercept error written into the header."""

    hu: np.ndarray
    mask: np.ndarray | None = None
    dropped_planes: tuple[int, ...] = ()
    intercept_error_hu: float = 0.0


def insert_anomaly(kind: str, hu: np.ndarray, spacing_zyx_mm: tuple[float, float, float],
                   rng: np.random.Generator, strength: float) -> Inserted:
    """``hu`` (float32, changed in place) with an anomaly of ``kind`` inserted.

    Raises:
        ValueError: unknown kind.
    """
    if kind not in _INSERTERS:
        raise ValueError(f"unknown anomaly type {kind!r}; one of {', '.join(ANOMALY_TYPES)}")
    return _INSERTERS[kind](hu, np.asarray(spacing_zyx_mm, dtype=float), rng, float(strength))


# --- geometry -------------------------------------------------------------------------------

class _Body:
    """The patient on the written grid: largest connected region above ``SKIN_HU``."""

    def __init__(self, hu: np.ndarray, spacing: np.ndarray) -> None:
        mask = hu > SKIN_HU
        labels, n = ndimage.label(mask[:, ::2, ::2])
        sizes = np.bincount(labels.ravel())[1:]
        coarse = labels == 1 + int(np.argmax(sizes)) if n else mask[:, ::2, ::2]
        self.mask = np.repeat(np.repeat(coarse, 2, axis=1), 2, axis=2)[:, : hu.shape[1], : hu.shape[2]]
        self.spacing = spacing
        z, y, x = np.nonzero(self.mask)
        self.box = (y.min(), y.max(), x.min(), x.max()) if y.size else (0, hu.shape[1] - 1, 0, hu.shape[2] - 1)
        self.centre = (float(np.mean(y)), float(np.mean(x))) if y.size else (hu.shape[1] / 2, hu.shape[2] / 2)
        self.shape = hu.shape

    def anterior_skin(self, k: int, x: float) -> float:
        """Row index of the skin's front at column ``x`` in plane ``k`` (y grows posterior)."""
        column = np.nonzero(self.mask[k, :, int(np.clip(round(x), 0, self.shape[2] - 1))])[0]
        return float(column[0]) if column.size else self.box[0]

    def inside(self, k: int, y: float, x: float) -> bool:
        """Whether the voxel nearest (k, y, x) lies in the body."""
        return bool(self.mask[k, int(round(y)), int(round(x))])


def _tube(shape: tuple[int, ...], spacing: np.ndarray, points: np.ndarray, radius_mm: float) -> np.ndarray:
    """Voxels within ``radius_mm`` of a polyline of (M, 3) voxel-index points."""
    dense = [points[0]]
    for a, b in zip(points[:-1], points[1:], strict=True):
        steps = max(2, int(np.ceil(np.abs((b - a) * spacing / spacing.min()).max() * 2)))
        dense.extend(a + (b - a) * t for t in np.linspace(0, 1, steps)[1:])
    dense = np.array(dense)
    pad = np.ceil(radius_mm / spacing).astype(int) + 2
    low = np.maximum(np.floor(dense.min(axis=0)).astype(int) - pad, 0)
    high = np.minimum(np.ceil(dense.max(axis=0)).astype(int) + pad + 1, shape)
    seeds = np.ones(tuple(high - low), dtype=bool)
    idx = np.clip(np.round(dense).astype(int) - low, 0, np.array(seeds.shape) - 1)
    seeds[tuple(idx.T)] = False
    near = ndimage.distance_transform_edt(seeds, sampling=spacing) <= radius_mm
    out = np.zeros(shape, dtype=bool)
    out[low[0]:high[0], low[1]:high[1], low[2]:high[2]] = near
    return out


def _ellipsoid(shape: tuple[int, ...], spacing: np.ndarray, centre: np.ndarray,
               radii_mm: np.ndarray) -> np.ndarray:
    """Voxels inside an axis-aligned ellipsoid (centre in voxel indices)."""
    grids = np.ogrid[tuple(slice(0, n) for n in shape)]
    total = sum(((g - c) * s / r) ** 2 for g, c, s, r in zip(grids, centre, spacing, radii_mm, strict=True))
    return total <= 1.0


def _metal(hu: np.ndarray, mask: np.ndarray, rng: np.random.Generator, low: float = 2200.0) -> None:
    """Metal voxels: near saturation, a little noisy (photon starvation inside the object)."""
    hu[mask] = np.minimum(rng.uniform(low, METAL_MAX_HU) + rng.normal(0, 120, mask.sum()), METAL_MAX_HU)


def _streaks(hu: np.ndarray, mask: np.ndarray, spacing: np.ndarray, rng: np.random.Generator,
             amplitude_hu: float, n_lines: int) -> None:
    """Beam-hardening and photon-starvation streaks from the metal in ``mask``, plane by plane:
    dark and bright lines through the object that fade with distance from it."""
    planes = np.nonzero(mask.any(axis=(1, 2)))[0]
    if planes.size == 0:
        return
    ny, nx = hu.shape[1:]
    yy, xx = np.mgrid[0:ny, 0:nx].astype(np.float32)
    angles = rng.uniform(0, np.pi, n_lines)
    signs = rng.choice([-1.0, -1.0, 0.6], n_lines)
    decay_mm = 60.0
    for k in planes:
        y, x = np.nonzero(mask[k])
        cy, cx = y.mean(), x.mean()
        weight = min(1.0, y.size / 30.0)
        r = np.hypot(yy - cy, xx - cx) * spacing[1]
        field = np.zeros((ny, nx), dtype=np.float32)
        for theta, sign in zip(angles + rng.normal(0, 0.02, n_lines), signs, strict=True):
            perp = np.abs((xx - cx) * np.sin(theta) - (yy - cy) * np.cos(theta))
            field += sign * np.exp(-0.5 * (perp / 0.9) ** 2)
        hu[k] += (amplitude_hu * weight * field * np.exp(-r / decay_mm)) * ~mask[k]


# --- local objects ---------------------------------------------------------------------------

def _spinal_hardware(hu, spacing, rng, strength) -> Inserted:
    body = _Body(hu, spacing)
    nz = hu.shape[0]
    length = int(np.clip((40 + 110 * strength) / spacing[0], 3, nz))
    k0 = int(rng.integers(0, nz - length + 1))
    y_back = body.box[1]
    depth = body.box[1] - body.box[0]
    cy = y_back - 0.2 * depth
    cx = body.centre[1]
    mask = np.zeros(hu.shape, dtype=bool)
    for side in (-1, 1):
        x = cx + side * 17.0 / spacing[2]
        pts = np.array([[k0, cy, x], [k0 + length - 1, cy + rng.normal(0, 1), x + rng.normal(0, 1)]])
        mask |= _tube(hu.shape, spacing, pts, 2.5 + 1.0 * strength)
        for k in np.linspace(k0, k0 + length - 1, max(2, length * int(spacing[0]) // 30)):
            screw = np.array([[k, cy, x], [k, cy - 40 / spacing[1], x - side * 10 / spacing[2]]])
            mask |= _tube(hu.shape, spacing, screw, 2.5)
    _metal(hu, mask, rng)
    _streaks(hu, mask, spacing, rng, 120 + 280 * strength, 10)
    return Inserted(hu, mask)


def _pacemaker(hu, spacing, rng, strength) -> Inserted:
    body = _Body(hu, spacing)
    nz = hu.shape[0]
    k = int(rng.integers(nz // 3, max(nz // 3 + 1, nz - 4)))
    width = body.box[3] - body.box[2]
    x = body.centre[1] + 0.28 * width
    y = body.anterior_skin(k, x) + 9.0 / spacing[1]
    radii = np.array([20.0 + 5 * strength, 4.0, 24.0 + 5 * strength])  # z, y (thin), x
    can = _ellipsoid(hu.shape, spacing, np.array([k, y, x]), radii)
    heart = np.array([max(0, k - 40 / spacing[0]), body.centre[0], body.centre[1] + 0.05 * width])
    mask = can.copy()
    for _ in range(1 + int(strength > 0.4)):
        mid = (np.array([k, y, x]) + heart) / 2 + rng.normal(0, 6, 3)
        mask |= _tube(hu.shape, spacing, np.array([[k, y, x], mid, heart + rng.normal(0, 4, 3)]), 1.2)
    _metal(hu, mask, rng, low=2500.0)
    _streaks(hu, can, spacing, rng, 80 + 200 * strength, 8)
    return Inserted(hu, mask)


def _external_cable(hu, spacing, rng, strength) -> Inserted:
    body = _Body(hu, spacing)
    nz = hu.shape[0]
    width = body.box[3] - body.box[2]
    x = body.centre[1] + rng.uniform(-0.35, 0.35) * width
    pts = []
    for k in np.linspace(0, nz - 1, 6):
        x_k = x + rng.normal(0, 8 / spacing[2])
        pts.append([k, body.anterior_skin(int(k), x_k) - (2.0 + 3.0 * rng.uniform()) / spacing[1], x_k])
    pts = np.array(pts)
    sheath = _tube(hu.shape, spacing, pts, 2.0 + 1.5 * strength)
    core = _tube(hu.shape, spacing, pts, 0.6 + 0.6 * strength)
    hu[sheath] = rng.uniform(-50, 150)
    hu[core] = rng.uniform(1200, METAL_MAX_HU)
    return Inserted(hu, sheath)


def _ecg_electrodes(hu, spacing, rng, strength) -> Inserted:
    body = _Body(hu, spacing)
    nz = hu.shape[0]
    width = body.box[3] - body.box[2]
    mask = np.zeros(hu.shape, dtype=bool)
    for _ in range(2 + int(round(3 * strength))):
        k = int(rng.integers(0, nz))
        x = body.centre[1] + rng.uniform(-0.4, 0.4) * width
        y = body.anterior_skin(k, x)
        pad = _ellipsoid(hu.shape, spacing, np.array([k, y - 1.5 / spacing[1], x]), np.array([1.5, 1.5, 11.0]) * [1, 1, 1])
        pad &= hu < -300
        hu[pad] = rng.uniform(-120, 20)
        snap = _ellipsoid(hu.shape, spacing, np.array([k, y - 4.0 / spacing[1], x]), np.array([2.5, 2.5, 3.0]))
        _metal(hu, snap, rng)
        wire_end = np.array([min(nz - 1, k + rng.integers(-6, 7)), y - 15 / spacing[1], x + rng.normal(0, 30)])
        wire = _tube(hu.shape, spacing, np.array([[k, y - 4.0 / spacing[1], x], wire_end]), 0.8)
        hu[wire & (hu < -300)] = rng.uniform(300, 1500)
        mask |= pad | snap | wire
    return Inserted(hu, mask)


def _heart_valve(hu, spacing, rng, strength) -> Inserted:
    body = _Body(hu, spacing)
    nz = hu.shape[0]
    k = int(rng.integers(nz // 4, max(nz // 4 + 1, 3 * nz // 4)))
    width = body.box[3] - body.box[2]
    centre = np.array([k, body.centre[0] - 0.08 * (body.box[1] - body.box[0]), body.centre[1] + 0.06 * width])
    radius = 10.0 + 3.0 * strength
    tilt = rng.uniform(0, np.pi)
    ring = np.array([[centre[0] + radius * np.sin(a) * np.cos(tilt) / spacing[0],
                      centre[1] + radius * np.sin(a) * np.sin(tilt) / spacing[1],
                      centre[2] + radius * np.cos(a) / spacing[2]] for a in np.linspace(0, 2 * np.pi, 25)])
    mask = _tube(hu.shape, spacing, ring, 1.2 + 1.3 * strength)
    _metal(hu, mask, rng, low=1500.0 + 1000 * strength)
    _streaks(hu, mask, spacing, rng, 40 + 160 * strength, 6)
    return Inserted(hu, mask)


def _foreign_object(hu, spacing, rng, strength) -> Inserted:
    body = _Body(hu, spacing)
    for _ in range(50):
        k = int(rng.integers(0, hu.shape[0]))
        y = rng.uniform(body.box[0], body.box[1])
        x = rng.uniform(body.box[2], body.box[3])
        if body.inside(k, y, x):
            break
    radii = np.array([1.0 + 1.0 * strength, 6.0 + 8.0 * strength, 6.0 + 8.0 * strength])
    mask = _ellipsoid(hu.shape, spacing, np.array([k, y, x]), radii)
    _metal(hu, mask, rng, low=2600.0)
    _streaks(hu, mask, spacing, rng, 100 + 300 * strength, 12)
    return Inserted(hu, mask)


# --- global anomalies ------------------------------------------------------------------------

def _heavy_noise(hu, spacing, rng, strength) -> Inserted:
    sd = 25.0 + 90.0 * strength
    noise = ndimage.gaussian_filter(rng.standard_normal(hu.shape, dtype=np.float32), (0, 0.5, 0.5))
    hu += noise * np.float32(sd / max(float(noise.std()), 1e-6))
    return Inserted(hu)


def _fov_truncation(hu, spacing, rng, strength) -> Inserted:
    body = _Body(hu, spacing)
    half_width = (body.box[3] - body.box[2]) / 2.0
    radius = half_width * (0.95 - 0.25 * strength)
    cy, cx = (np.array(hu.shape[1:]) - 1) / 2.0 + rng.normal(0, 4, 2)
    yy, xx = np.ogrid[0:hu.shape[1], 0:hu.shape[2]]
    outside = np.hypot(yy - cy, xx - cx) > radius
    hu[:, outside] = -1024.0
    return Inserted(hu)


def _wrong_rescale(hu, spacing, rng, strength) -> Inserted:
    error = float(rng.choice([-1.0, 1.0]) * (40.0 + 960.0 * strength))
    hu += np.float32(error)
    return Inserted(hu, intercept_error_hu=error)


def _missing_slab(hu, spacing, rng, strength) -> Inserted:
    nz = hu.shape[0]
    n = 1 + int(strength > 0.5) if nz < 40 else max(1, int(round((0.3 + 0.7 * strength) * 0.05 * nz)))
    start = int(rng.integers(2, max(3, nz - n - 2)))
    return Inserted(hu, dropped_planes=tuple(range(start, min(start + n, nz - 1))))


def _wrong_body_region(hu, spacing, rng, strength) -> Inserted:
    return Inserted(hu)  # the planner drew a base of another body region


def _non_contrast(hu, spacing, rng, strength) -> Inserted:
    near_bone = ndimage.maximum_filter(hu, size=(1, 5, 5)) > 600
    blood = (hu > 110) & (hu < 450) & ~near_bone
    removed = 0.45 + 0.5 * strength
    hu[blood] -= np.float32(removed) * (hu[blood] - 45.0)
    return Inserted(hu)


def _streak_artefact(hu, spacing, rng, strength) -> Inserted:
    nz = hu.shape[0]
    span = max(2, int((15 + 45 * strength) / spacing[0]))
    k0 = int(rng.integers(0, max(1, nz - span)))
    ny, nx = hu.shape[1:]
    yy, xx = np.mgrid[0:ny, 0:nx].astype(np.float32)
    cy, cx = (ny - 1) / 2, (nx - 1) / 2
    amplitude = 50.0 + 250.0 * strength
    for k in range(k0, min(nz, k0 + span)):
        field = np.zeros((ny, nx), dtype=np.float32)
        for theta in rng.normal(0, 0.18, 8):
            perp = np.abs((xx - cx) * np.sin(theta) - (yy - cy - rng.normal(0, 10)) * np.cos(theta))
            field += rng.choice([-1.0, 0.7]) * np.exp(-0.5 * (perp / 0.8) ** 2)
        hu[k] += amplitude * field
    return Inserted(hu)


def _ring_artefact(hu, spacing, rng, strength) -> Inserted:
    ny, nx = hu.shape[1:]
    yy, xx = np.ogrid[0:ny, 0:nx]
    r = np.hypot(yy - (ny - 1) / 2, xx - (nx - 1) / 2)
    ring = np.zeros((ny, nx), dtype=np.float32)
    for radius in rng.uniform(5, 0.4 * nx, 1 + int(3 * strength)):
        ring += rng.choice([-1.0, 1.0]) * np.exp(-0.5 * ((r - radius) / 0.7) ** 2)
    hu += (40.0 + 160.0 * strength) * ring[None]
    return Inserted(hu)


_INSERTERS: dict[str, Callable[..., Inserted]] = {
    "spinal_hardware": _spinal_hardware, "pacemaker": _pacemaker, "external_cable": _external_cable,
    "ecg_electrodes": _ecg_electrodes, "heart_valve": _heart_valve, "foreign_object": _foreign_object,
    "heavy_noise": _heavy_noise, "fov_truncation": _fov_truncation, "wrong_rescale": _wrong_rescale,
    "missing_slab": _missing_slab, "wrong_body_region": _wrong_body_region,
    "non_contrast": _non_contrast, "streak_artefact": _streak_artefact,
    "ring_artefact": _ring_artefact,
}
