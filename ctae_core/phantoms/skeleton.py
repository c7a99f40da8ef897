"""Bones: spine with discs and posterior elements, ribs with costal cartilage, sternum,
clavicles, scapulae and pelvis. Cortical shells around cancellous cores (bone 300–1500 HU)."""

from __future__ import annotations

import numpy as np

from ctae_core.phantoms.anatomy import (
    LUNG_APEX_W_MM,
    SubjectParams,
    body_coords,
    body_radii,
    cavity_radii,
    spine_v,
)
from ctae_core.phantoms.grid import Grid, paint_capsule, paint_ellipsoid, rotation
from ctae_core.phantoms.tissues import Tissue

_CORTEX_MM = 2.5


def paint_skeleton(labels: np.ndarray, params: SubjectParams, grid: Grid) -> None:
    """Every bone of the chest (and of the abdomen and pelvis, for long scans)."""
    paint_spine(labels, params, grid)
    paint_ribs(labels, params, grid)
    _paint_flat_bones(labels, params, grid)


def _bone(labels: np.ndarray, outer: np.ndarray, inner: np.ndarray) -> None:
    labels[outer] = Tissue.CORTICAL_BONE
    labels[inner] = Tissue.CANCELLOUS_BONE


def paint_spine(labels: np.ndarray, params: SubjectParams, grid: Grid) -> None:
    """Vertebral bodies separated by discs, the canal, laminae, spinous and transverse processes."""
    w_all, _, _ = body_coords(params, grid)
    vs_all = spine_v(params, w_all)
    low = params.to_patient(-45.0, float(vs_all.min()) - 20.0, 0.0)
    high = params.to_patient(45.0, float(vs_all.max()) + 66.0, 0.0)
    box = (
        slice(None),
        grid.index_range("y", low[1], high[1]),
        grid.index_range("x", low[0], high[0]),
    )
    z, y, x = grid.coords(box)
    w, v, u = z - params.centre_xyz_mm[2], y - params.centre_xyz_mm[1], x - params.centre_xyz_mm[0]
    vs = vs_all
    view = labels[box]
    phase = np.mod(w - params.spine_phase_mm, params.spine_period_mm)
    disc = phase < 5.0
    body_r = (u / 19.0) ** 2 + ((v - vs) / 16.0) ** 2
    _bone(view, (body_r <= 1.0) & ~disc, (body_r <= (1 - _CORTEX_MM / 16.0) ** 2) & ~disc)
    view[(body_r <= 1.0) & disc] = Tissue.SOFT
    arch = (phase > 6.0) & (phase < params.spine_period_mm - 3.0)
    canal_d2 = u**2 + (v - vs - 27.0) ** 2
    lamina = (canal_d2 <= 15.0**2) & (canal_d2 > 8.0**2) & arch
    spinous = ((u / 5.0) ** 2 + ((v - vs - 48.0) / 14.0) ** 2 <= 1.0) & arch
    transverse = ((np.abs(u) - 26.0) / 15.0) ** 2 + ((v - vs - 26.0) / 5.5) ** 2 <= 1.0
    view[lamina | spinous | (transverse & arch)] = Tissue.CORTICAL_BONE
    view[canal_d2 <= 8.0**2] = Tissue.SOFT


def paint_ribs(labels: np.ndarray, params: SubjectParams, grid: Grid) -> None:
    """Ribs circling the thorax inside the muscle, sloping down towards their anterior ends."""
    w_all, v, u = body_coords(params, grid)
    w_all, v, u = w_all[:, 0, 0], v[0], u[0]
    ac, bc = cavity_radii(params, w_all)
    angle = np.arctan2(u, v)  # 0 at the spine, ±pi at the sternum; (Y, X)
    drop = params.rib_drop_mm * (1.0 - np.cos(angle)) / 2.0
    span = (np.abs(angle) > 0.3) & (np.abs(angle) < 2.75)
    near_sternum = np.abs(angle) > 2.35
    radius = np.sqrt(u**2 + v**2)
    radial_cache: dict[tuple[float, float], np.ndarray] = {}
    for k, w in enumerate(w_all):
        rib_w = w + drop
        thorax = span & (rib_w > -150.0) & (rib_w < LUNG_APEX_W_MM + 10.0)
        if not thorax.any():
            continue
        key = (round(float(ac[k]) * 2) / 2, round(float(bc[k]) * 2) / 2)
        if key not in radial_cache:  # the ring only changes where the body outline does
            ar, br = key[0] + RIB_RING_MM, key[1] + RIB_RING_MM
            rn = np.sqrt((u / ar) ** 2 + (v / br) ** 2)
            radial_cache[key] = ((rn - 1.0) * radius / np.maximum(rn, 1e-3) / 4.5) ** 2
        phase = np.mod(rib_w - params.spine_phase_mm, params.spine_period_mm) - 9.0
        shape = radial_cache[key] + (phase / 5.5) ** 2
        rib = (shape <= 1.0) & thorax
        plane = labels[k]
        plane[rib & ~near_sternum] = Tissue.CORTICAL_BONE
        plane[rib & ~near_sternum & (shape <= 0.35)] = Tissue.CANCELLOUS_BONE
        plane[rib & near_sternum] = Tissue.CARTILAGE


RIB_RING_MM = 5.0


def _paint_flat_bones(labels: np.ndarray, params: SubjectParams, grid: Grid) -> None:
    """Sternum, clavicles, scapulae, and the iliac wings of the pelvis."""
    put = params.to_patient
    _, b0 = (float(x[0]) for x in body_radii(params, np.array([0.0], dtype=np.float32)))
    a0, bc0 = (float(x[0]) for x in cavity_radii(params, np.array([0.0], dtype=np.float32)))
    front = -(bc0 + RIB_RING_MM)
    for outer, radii in (
        (Tissue.CORTICAL_BONE, (15, 6, 105)),
        (Tissue.CANCELLOUS_BONE, (12.5, 3.5, 102)),
    ):
        paint_ellipsoid(labels, grid, put(0, front, 30), radii, outer)
    for side in (-1.0, 1.0):
        paint_capsule(
            labels,
            grid,
            put(side * 18, front + 5, 150),
            put(side * 0.8 * a0, front + 35, 168),
            7.5,
            Tissue.CORTICAL_BONE,
        )
        paint_ellipsoid(
            labels,
            grid,
            put(side * 0.62 * a0, b0 - params.fat_mm - 16, 75),
            (48, 5, 70),
            Tissue.CORTICAL_BONE,
            rotation(yaw_deg=-side * 22),
        )
        for outer, radii in (
            (Tissue.CORTICAL_BONE, (62, 20, 70)),
            (Tissue.CANCELLOUS_BONE, (58, 16, 66)),
        ):
            paint_ellipsoid(
                labels,
                grid,
                put(side * 0.6 * a0, 0.35 * b0, -560),
                radii,
                outer,
                rotation(yaw_deg=side * 35),
            )
