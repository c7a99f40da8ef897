"""Objects planted into a rendered scene: metal implants, tubes, foreign bodies, and streaks.

Each painter takes a :class:`~ctae_core.phantoms.render.Scene` whose ``hu`` already holds the
blurred tissue HU, and edits ``hu`` and ``labels`` in place. ``scene.strength`` in [0, 1] runs
from subtle (small, few) to obvious (large, many). Metal is painted after the partial-volume
blur with ≥ 6000 HU and ≥ 2 mm radius, so that it still exceeds 3000 HU at 3 mm spacing.
"""

from __future__ import annotations

import numpy as np

from ctae_core.phantoms.anatomy import body_radii, cavity_radii, spine_v
from ctae_core.phantoms.grid import paint_capsule, paint_ellipsoid, paint_polyline, paint_torus
from ctae_core.phantoms.mediastinum import landmarks
from ctae_core.phantoms.render import Scene
from ctae_core.phantoms.tissues import Tissue


def _scan_w(scene: Scene, margin_mm: float = 15.0) -> tuple[float, float]:
    """(lowest, highest) body-frame w of the scan, ``margin_mm`` inside its ends."""
    top = scene.geometry.w_top_mm
    low = top - scene.geometry.length_mm
    margin = min(margin_mm, scene.geometry.length_mm / 3.0)
    return low + margin, top - margin


def _set_metal(scene: Scene, hu: float) -> None:
    scene.hu[scene.labels == Tissue.METAL] = hu


def paint_spinal_hardware(scene: Scene) -> None:
    """Pedicle screws at 1–6 vertebral levels, joined by two rods when more than one level."""
    s, p = scene.strength, scene.params
    levels = 1 + int(round(5 * s))
    low, high = _scan_w(scene)
    centre = scene.rng.uniform(low, high)
    ws = centre + (np.arange(levels) - (levels - 1) / 2.0) * p.spine_period_mm
    ws = np.clip(ws, low, high)
    for w in ws:
        vs = float(spine_v(p, np.float32(w)))
        for side in (-1.0, 1.0):
            paint_capsule(
                scene.labels,
                scene.grid,
                p.to_patient(side * 24, vs + 40, w),
                p.to_patient(side * 7, vs - 4, w),
                3.2,
                Tissue.METAL,
            )
    if levels > 1:
        for side in (-1.0, 1.0):
            ends = [
                p.to_patient(side * 26, float(spine_v(p, np.float32(w))) + 42, w)
                for w in (ws[0] - 8, ws[-1] + 8)
            ]
            paint_capsule(scene.labels, scene.grid, ends[0], ends[1], 3.0, Tissue.METAL)
    _set_metal(scene, 9000 + 6000 * s)


def paint_heart_valve(scene: Scene) -> None:
    """A prosthetic aortic valve: a metal sewing ring, with carbon leaflets when obvious."""
    s, marks = scene.strength, landmarks(scene.params)
    paint_torus(
        scene.labels,
        scene.grid,
        marks.aortic_root,
        marks.aortic_axis,
        11.5 + 2.0 * s,
        2.0 + 1.2 * s,
        Tissue.METAL,
    )
    _set_metal(scene, 8000 + 6000 * s)
    if s > 0.5:
        for offset in (-4.0, 4.0):
            centre = marks.aortic_root + marks.aortic_axis * offset * 0.5
            paint_ellipsoid(scene.hu, scene.grid, centre, (9.0, 9.0, 1.5), 1800.0)


def paint_pacemaker(scene: Scene) -> None:
    """A generator in the left upper chest wall with leads to the right atrium (and ventricle)."""
    s, p, marks = scene.strength, scene.params, landmarks(scene.params)
    low, high = _scan_w(scene, 30.0)
    w_can = float(np.clip(high - 10.0, low, high))
    a, b = (float(x[0]) for x in body_radii(p, np.array([w_can], dtype=np.float32)))
    can = p.to_patient(0.45 * a, -(b - 7.0), w_can)
    paint_ellipsoid(
        scene.labels, scene.grid, can, (18 + 10 * s, 3.5 + 1.5 * s, 16 + 8 * s), Tissue.METAL
    )
    targets = [marks.right_atrium] + ([marks.right_ventricle_apex] if s > 0.4 else [])
    for target in targets:
        path = np.array(
            [can, p.to_patient(0.15 * a, -(b - 30.0), w_can + 5), marks.svc_top, target]
        )
        paint_polyline(scene.labels, scene.grid, path, 1.3 + 0.8 * s, Tissue.METAL)
    _set_metal(scene, 7000 + 5000 * s)


def paint_foreign_object(scene: Scene) -> None:
    """A large metal object (4–14 cm plate) inside the chest or abdomen."""
    s, p, rng = scene.strength, scene.params, scene.rng
    low, high = _scan_w(scene)
    w = rng.uniform(low, high)
    ac, bc = (float(x[0]) for x in cavity_radii(p, np.array([w], dtype=np.float32)))
    centre = p.to_patient(rng.uniform(-0.5, 0.5) * ac, rng.uniform(-0.5, 0.3) * bc, w)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    radii = (20 + 50 * s, 6 + 9 * s, 2.0 + 1.5 * s)
    paint_ellipsoid(scene.labels, scene.grid, centre, radii, Tissue.METAL, q)
    _set_metal(scene, 9000 + 6000 * s)


def paint_external_cable(scene: Scene) -> None:
    """A contrast line or cable lying on the patient, outside the skin, along the scan."""
    s, p, grid = scene.strength, scene.params, scene.grid
    z = grid.axis_mm("z")
    w = z - p.centre_xyz_mm[2]
    a, b = body_radii(p, w)
    phase = scene.rng.uniform(0, 2 * np.pi)
    for k in range(1 + int(s > 0.6)):
        u = (0.25 + 0.3 * k) * a * np.sin(w / 70.0 + phase + k)
        radius = 3.0 + 2.5 * s
        gap = 4.0 + radius
        v = -b * np.sqrt(np.clip(1 - (u / a) ** 2, 0, 1)) - gap
        cx, cy = (u + p.centre_xyz_mm[0])[:, None, None], (v + p.centre_xyz_mm[1])[:, None, None]
        d2 = (grid.axis_mm("x")[None, None, :] - cx) ** 2 + (
            grid.axis_mm("y")[None, :, None] - cy
        ) ** 2
        scene.labels[d2 <= radius**2] = Tissue.FOREIGN
        scene.hu[d2 <= radius**2] = 150.0
        scene.hu[d2 <= (radius - 1.0) ** 2] = 800.0 + 1700.0 * s  # diluted contrast


def add_streaks(
    scene: Scene,
    centre_xyz: np.ndarray,
    w_range: tuple[float, float],
    amplitude_hu: float,
    n_lines: int,
) -> None:
    """Alternating bright and dark lines through ``centre_xyz`` in the planes of ``w_range``.

    This is the look of beam hardening and photon starvation around dense objects.
    """
    grid, rng = scene.grid, scene.rng
    y = grid.axis_mm("y")[:, None] - centre_xyz[1]
    x = grid.axis_mm("x")[None, :] - centre_xyz[0]
    plane = np.zeros((grid.shape_zyx[1], grid.shape_zyx[2]), dtype=np.float32)
    for k, angle in enumerate(rng.uniform(0, np.pi, size=n_lines)):
        distance = x * np.sin(angle) - y * np.cos(angle)
        sign = 1.0 if k % 2 == 0 else -1.0
        plane += sign * amplitude_hu * rng.uniform(0.5, 1.0) * np.exp(-((distance / 2.5) ** 2))
    w = grid.axis_mm("z") - scene.params.centre_xyz_mm[2]
    low, high = w_range
    weight = np.clip(np.minimum(w - low, high - w) / 6.0 + 0.5, 0.0, 1.0).astype(np.float32)
    planes = np.nonzero(weight)[0]
    scene.hu[planes] += weight[planes, None, None] * plane[None]


def add_metal_streaks(scene: Scene) -> None:
    """Streaks through the centre of the planted metal, strongest for obvious cases."""
    where = np.argwhere(scene.labels == Tissue.METAL)
    if where.size == 0:
        return
    k, j, i = where.mean(axis=0)
    sz, sy, sx = scene.grid.spacing_zyx_mm
    ox, oy, oz = scene.grid.origin_xyz_mm
    centre = np.array([ox + i * sx, oy + j * sy, oz + k * sz])
    w = where[:, 0] * sz + oz - scene.params.centre_xyz_mm[2]
    add_streaks(
        scene,
        centre,
        (float(w.min()), float(w.max())),
        80 + 320 * scene.strength,
        4 + int(6 * scene.strength),
    )
