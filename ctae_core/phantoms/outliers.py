"""The planted outlier types, each tunable by a ``strength`` in [0, 1] (subtle → obvious).

A type acts at one or more stages of rendering (see :func:`ctae_core.phantoms.scan.render_scan`):
``adjust`` changes the subject or the scan geometry before anything is drawn, ``paint`` adds
objects to the blurred tissue HU, ``finish`` alters the noisy image, ``effects`` changes how the
series is written (wrong rescale intercept, missing slab).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from ctae_core.evaluation import INLIER  # the truth label the evaluation judges by
from ctae_core.phantoms import implants
from ctae_core.phantoms.anatomy import SubjectParams
from ctae_core.phantoms.render import ScanGeometry, Scene, WriteEffects
from ctae_core.phantoms.tissues import Tissue

Adjust = Callable[
    [SubjectParams, ScanGeometry, float, np.random.Generator], tuple[SubjectParams, ScanGeometry]
]


@dataclass(frozen=True)
class OutlierType:
    """One kind of planted outlier and the rendering stages it acts at."""

    name: str
    description: str
    metal: bool = False
    adjust: Adjust | None = None
    paint: Callable[[Scene], None] | None = None
    finish: Callable[[Scene], None] | None = None
    effects: Callable[[Scene], WriteEffects] | None = None


def _heavy_noise(p: SubjectParams, g: ScanGeometry, s: float, rng: np.random.Generator):
    return replace(p, noise_sd_hu=70.0 + 230.0 * s), g


def _truncated_fov(p: SubjectParams, g: ScanGeometry, s: float, rng: np.random.Generator):
    return p, replace(g, fov_mm=2.0 * p.half_width_mm * (0.9 - 0.3 * s))


def _off_centre(p: SubjectParams, g: ScanGeometry, s: float, rng: np.random.Generator):
    x, y, z = p.centre_xyz_mm
    dx = rng.choice([-1.0, 1.0]) * (50.0 + 100.0 * s)
    dy = rng.uniform(-10.0, 25.0) * (0.5 + s)
    return replace(p, centre_xyz_mm=(x + dx, y + dy, z), table_top_y_mm=p.table_top_y_mm + dy), g


def _arms_down(p: SubjectParams, g: ScanGeometry, s: float, rng: np.random.Generator):
    return replace(p, arms_down=1 if s < 0.35 else 2), g


def _non_contrast(p: SubjectParams, g: ScanGeometry, s: float, rng: np.random.Generator):
    hu = list(p.tissue_hu)
    blood = 40.0 + (1.0 - s) * 180.0
    for tissue in (Tissue.BLOOD_LEFT, Tissue.BLOOD_RIGHT, Tissue.LUNG_VESSEL):
        hu[tissue] = blood + rng.uniform(-5.0, 5.0)
    hu[Tissue.MYOCARDIUM] = 40.0 + (1.0 - s) * 40.0
    hu[Tissue.KIDNEY] = 35.0 + (1.0 - s) * 100.0
    hu[Tissue.LIVER] = 50.0 + (1.0 - s) * 20.0
    return replace(p, tissue_hu=tuple(hu)), g


def _streaks(scene: Scene) -> None:
    s, rng = scene.strength, scene.rng
    top = scene.geometry.w_top_mm
    low = top - scene.geometry.length_mm
    height = min(15.0 + 60.0 * s, scene.geometry.length_mm)
    start = rng.uniform(low, top - height)
    centre = scene.params.to_patient(rng.uniform(-40, 40), rng.uniform(-40, 60), 0.0)
    implants.add_streaks(
        scene, centre, (start, start + height), 70.0 + 500.0 * s, 3 + int(round(6 * s))
    )


def _truncation_rim(scene: Scene) -> None:
    """Reconstruction beyond the data makes the cut body bright at the edge of the field."""
    nx = scene.grid.shape_zyx[2]
    edge = np.minimum(np.arange(nx), nx - 1 - np.arange(nx)) * scene.grid.spacing_zyx_mm[2]
    boost = (60.0 + 200.0 * scene.strength) * np.exp(-edge / 12.0).astype(np.float32)
    body = scene.labels != Tissue.AIR
    scene.hu += np.where(body, boost[None, None, :], 0.0).astype(np.float32)


def _wrong_rescale(scene: Scene) -> WriteEffects:
    """±120 HU (subtle) … −1024 HU (intercept 0 written for −1024: the classic mix-up).

    Offsets above +450 HU are written as negative ones: they would lift air above −500 HU,
    which ingest refuses as not being HU at all, so the model would never see the scan.
    """
    magnitude = round(120.0 + 904.0 * scene.strength)
    sign = -1.0 if magnitude > 450 else float(scene.rng.choice([-1.0, 1.0]))
    return WriteEffects(intercept_offset_hu=sign * magnitude)


def _missing_slab(scene: Scene) -> WriteEffects:
    """1–2 planes (within ingest's tolerance, interpolated) or a slab ingest refuses."""
    n_z, s = scene.grid.shape_zyx[0], scene.strength
    if s < 0.5:
        n_missing = 1 if s < 0.25 else 2
    else:
        n_missing = int(round(3 + s * 0.3 * n_z))
    n_missing = min(n_missing, max(n_z - 4, 1))
    start = int(scene.rng.integers(2, max(n_z - n_missing - 1, 3)))
    return WriteEffects(dropped_planes=tuple(range(start, min(start + n_missing, n_z - 1))))


def _metal(paint: Callable[[Scene], None]) -> dict:
    return {"metal": True, "paint": paint, "finish": implants.add_metal_streaks}


OUTLIER_TYPES: dict[str, OutlierType] = {
    t.name: t
    for t in (
        OutlierType(
            "spinal_hardware", "pedicle screws and rods", **_metal(implants.paint_spinal_hardware)
        ),
        OutlierType("heart_valve", "prosthetic aortic valve", **_metal(implants.paint_heart_valve)),
        OutlierType("pacemaker", "pacemaker with leads", **_metal(implants.paint_pacemaker)),
        OutlierType(
            "foreign_object", "large metal foreign object", **_metal(implants.paint_foreign_object)
        ),
        OutlierType(
            "external_cable",
            "contrast line or cable outside the body",
            paint=implants.paint_external_cable,
        ),
        OutlierType("streak_artefact", "streak / beam-hardening artefact", finish=_streaks),
        OutlierType("heavy_noise", "heavy image noise", adjust=_heavy_noise),
        OutlierType(
            "truncated_fov",
            "body cut at the edges of the field of view",
            adjust=_truncated_fov,
            finish=_truncation_rim,
        ),
        OutlierType(
            "wrong_rescale", "HU offset from a wrong rescale intercept", effects=_wrong_rescale
        ),
        OutlierType("missing_slab", "slices missing from the series", effects=_missing_slab),
        OutlierType("off_centre", "patient far from the isocentre", adjust=_off_centre),
        OutlierType("arms_down", "arms beside the body in the field of view", adjust=_arms_down),
        OutlierType("non_contrast", "scan without contrast", adjust=_non_contrast),
    )
}
"""Every planted type by name (the names written to ``ground_truth.csv``)."""

METAL_TYPES = frozenset(name for name, t in OUTLIER_TYPES.items() if t.metal)


def outlier_type(name: str) -> OutlierType | None:
    """The type called ``name``; None for ``inlier``; ValueError for anything else."""
    if name == INLIER:
        return None
    if name not in OUTLIER_TYPES:
        raise ValueError(
            f"unknown outlier type {name!r}; expected 'inlier' or one of {sorted(OUTLIER_TYPES)}"
        )
    return OUTLIER_TYPES[name]


__all__ = ["INLIER", "METAL_TYPES", "OUTLIER_TYPES", "OutlierType", "outlier_type"]
