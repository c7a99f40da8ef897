"""Heart, great vessels, airways and the pulmonary vessel trees.

Positions are body-frame mm (u left, v posterior, w head; origin at the heart centre).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ctae_core.phantoms.anatomy import SubjectParams, cavity_radii, spine_v
from ctae_core.phantoms.grid import Grid, paint_ellipsoid, paint_polyline, rotation
from ctae_core.phantoms.tissues import Tissue


@dataclass(frozen=True)
class Landmarks:
    """Patient-space (x, y, z) points, in mm, that planted outliers attach to."""

    heart_centre: np.ndarray
    aortic_root: np.ndarray
    aortic_axis: np.ndarray  # unit vector, root → ascending aorta
    right_atrium: np.ndarray
    right_ventricle_apex: np.ndarray
    svc_top: np.ndarray


def _heart_centre_uvw(params: SubjectParams) -> np.ndarray:
    _, bc = cavity_radii(params, np.array([0.0], dtype=np.float32))
    return np.array([18.0, -0.2 * float(bc[0]), 0.0])


def landmarks(params: SubjectParams) -> Landmarks:
    """Where the heart's parts and the aortic root lie for this subject."""
    s, h = params.heart_scale, _heart_centre_uvw(params)
    root = h + np.array([-8.0, 2.0, 28.0]) * s
    top = np.array([-12.0, h[1] - 10.0, 80.0])
    axis = (top - root) / np.linalg.norm(top - root)
    put = params.to_patient
    return Landmarks(
        heart_centre=put(*h),
        aortic_root=put(*root),
        aortic_axis=axis,
        right_atrium=put(*(h + np.array([-42.0, 5.0, 8.0]) * s)),
        right_ventricle_apex=put(*(h + np.array([10.0, -35.0, -30.0]) * s)),
        svc_top=put(-36.0, h[1] + 5.0, 150.0),
    )


def paint_heart(labels: np.ndarray, params: SubjectParams, grid: Grid) -> None:
    """Pericardial fat, myocardium and four contrast-filled chambers."""
    s, h = params.heart_scale, _heart_centre_uvw(params)
    rot = rotation(yaw_deg=params.heart_yaw_deg, pitch_deg=params.heart_pitch_deg)
    put = params.to_patient

    def part(
        offset: tuple[float, float, float], radii: tuple[float, float, float], tissue: Tissue
    ) -> None:
        centre = put(*(h + np.array(offset) * s))
        paint_ellipsoid(labels, grid, centre, np.array(radii) * s, tissue, rot)

    part((0, 0, 0), (64, 52, 54), Tissue.FAT)
    part((0, 0, 0), (58, 47, 49), Tissue.MYOCARDIUM)
    part((-4, 34, 26), (28, 19, 21), Tissue.MYOCARDIUM)  # atria walls
    part((-40, 6, 10), (23, 24, 27), Tissue.MYOCARDIUM)
    part((14, 4, -6), (32, 21, 24), Tissue.BLOOD_LEFT)  # left ventricle
    part((-14, -24, -4), (30, 12, 28), Tissue.BLOOD_RIGHT)  # right ventricle
    part((-4, 34, 26), (25, 16, 18), Tissue.BLOOD_LEFT)  # left atrium
    part((-40, 6, 10), (20, 21, 24), Tissue.BLOOD_RIGHT)  # right atrium


def paint_great_vessels(labels: np.ndarray, params: SubjectParams, grid: Grid) -> None:
    """Aorta (root, arch, descending), pulmonary trunk and arteries, superior vena cava."""
    s, h = params.heart_scale, _heart_centre_uvw(params)
    put = params.to_patient
    vs = {w: float(spine_v(params, np.float32(w))) for w in (90.0, 0.0, -150.0, -400.0, -560.0)}
    root = h + np.array([-8.0, 2.0, 28.0]) * s
    aorta = [
        root,
        (-12, h[1] - 10, 80),
        (-4, h[1] + 8, 108),
        (14, vs[90] - 40, 110),
        (22, vs[90] - 22, 88),
        (20, vs[0] - 22, 0),
        (14, vs[-150] - 24, -150),
        (6, vs[-400] - 28, -400),
        (3, vs[-560] - 28, -560),
    ]
    radii = [params.aorta_radius_mm] * 4 + [params.aorta_radius_mm * 0.78] * 5
    points = np.array([put(*p) for p in aorta])
    for k in range(len(points) - 1):
        paint_polyline(labels, grid, points[k : k + 2], radii[k + 1], Tissue.BLOOD_LEFT)
    trunk = h + np.array([-2.0, -42.0, 22.0]) * s
    split = np.array([8.0, h[1] + 5.0, 58.0])
    paint_polyline(labels, grid, np.array([put(*trunk), put(*split)]), 13.0 * s, Tissue.BLOOD_RIGHT)
    for end in ((52.0, h[1] + 25.0, 62.0), (-50.0, h[1] + 22.0, 56.0)):
        paint_polyline(
            labels, grid, np.array([put(*split), put(*end)]), 9.5 * s, Tissue.BLOOD_RIGHT
        )
    ra_top = h + np.array([-40.0, 6.0, 30.0]) * s
    svc = np.array([put(*ra_top), put(-36.0, h[1] + 5.0, 150.0)])
    paint_polyline(labels, grid, svc, 9.0, Tissue.BLOOD_RIGHT)


def paint_airways(labels: np.ndarray, params: SubjectParams, grid: Grid) -> None:
    """Trachea from the neck to the carina, and the two main bronchi."""
    put = params.to_patient
    v_top, v_carina = (float(spine_v(params, np.float32(w))) for w in (300.0, 70.0))
    carina = put(0.0, v_carina - 42.0, 70.0)
    paint_polyline(
        labels, grid, np.array([put(0.0, v_top - 40.0, 320.0), carina]), 8.5, Tissue.AIRWAY
    )
    for side in (-1.0, 1.0):
        hilum = put(side * 48.0, v_carina - 35.0, 42.0)
        paint_polyline(labels, grid, np.array([carina, hilum]), 5.5, Tissue.AIRWAY)


def paint_lung_vessels(labels: np.ndarray, params: SubjectParams, grid: Grid) -> None:
    """Branching vessel trees from each hilum, drawn only inside the lungs."""
    rng = np.random.default_rng(params.anatomy_seed + 1)
    lung = np.array([Tissue.LUNG])
    v_hilum = float(spine_v(params, np.float32(40.0))) - 45.0
    for side in (-1.0, 1.0):
        stack = [(params.to_patient(side * 45.0, v_hilum, 40.0), 5.0, 0)]
        while stack:
            start, radius, depth = stack.pop()
            for _ in range(3 if depth < 3 else 0):
                direction = rng.normal(size=3) + np.array([side * 1.3, 0.1, 0.0])
                direction /= np.linalg.norm(direction)
                end = start + direction * rng.uniform(25.0, 50.0)
                paint_polyline(
                    labels, grid, np.array([start, end]), radius, Tissue.LUNG_VESSEL, where=lung
                )
                stack.append((end, radius * 0.68, depth + 1))
