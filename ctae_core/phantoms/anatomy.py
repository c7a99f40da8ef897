"""Subject anatomy: body wall, lungs, abdomen and the scanner table, as a tissue label volume.

All sizes are in mm in a body frame (u to the patient's left, v to posterior, w to head) whose
origin is the heart centre; ``SubjectParams.centre_xyz_mm`` places that origin in the patient
(LPS) coordinates of the grid. The heart, great vessels and airways are in
:mod:`ctae_core.phantoms.mediastinum`, bones in :mod:`ctae_core.phantoms.skeleton`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ctae_core.phantoms.grid import Grid, paint_ellipsoid, rotation
from ctae_core.phantoms.tissues import Tissue

# Body outline along w (mm from the heart centre): pelvis, waist, thorax, shoulders, neck.
_W_KNOTS = (-900.0, -500.0, -250.0, -100.0, 100.0, 150.0, 210.0, 400.0)
_WIDTH_FACTOR = (1.0, 1.0, 0.93, 0.97, 1.0, 0.98, 0.42, 0.42)
_DEPTH_FACTOR = (1.0, 1.0, 1.03, 1.0, 1.0, 0.98, 0.72, 0.72)
LUNG_APEX_W_MM = 150.0
RIB_SPACE_MM = 10.0


@dataclass(frozen=True)
class SubjectParams:
    """One subject's body: sizes in mm, angles in degrees, HU per tissue.

    Attributes:
        half_width_mm: Lateral semi-axis of the chest at heart level (skin to centre).
        half_depth_mm: Antero-posterior semi-axis of the chest at heart level.
        fat_mm: Subcutaneous fat thickness.
        muscle_mm: Chest-wall muscle thickness.
        centre_xyz_mm: Patient (LPS) position of the body frame's origin (heart centre).
        table_top_y_mm: Patient y of the table's top surface (posterior of the body).
        heart_scale: Heart size relative to an average adult heart.
        heart_yaw_deg: Rotation of the heart's long axis towards the patient's left.
        heart_pitch_deg: Tilt of the heart's long axis towards the feet.
        aorta_radius_mm: Radius of the ascending aorta.
        spine_period_mm: Height of one vertebra plus disc.
        spine_phase_mm: Where along w the disc pattern starts.
        rib_drop_mm: How much lower (in w) a rib's anterior end is than its posterior end.
        tissue_hu: Mean HU per :class:`Tissue` value.
        noise_sd_hu: Standard deviation of the image noise at the written resolution.
        arms_down: 0 (arms above the head, as for CCTA), 1 or 2 arms beside the body.
        anatomy_seed: Seed of the random details (lung vessel tree, bowel gas).
    """

    half_width_mm: float
    half_depth_mm: float
    fat_mm: float
    muscle_mm: float
    centre_xyz_mm: tuple[float, float, float]
    table_top_y_mm: float
    heart_scale: float
    heart_yaw_deg: float
    heart_pitch_deg: float
    aorta_radius_mm: float
    spine_period_mm: float
    spine_phase_mm: float
    rib_drop_mm: float
    tissue_hu: tuple[float, ...]
    noise_sd_hu: float
    arms_down: int = 0
    anatomy_seed: int = 0

    def to_patient(self, u: float, v: float, w: float) -> np.ndarray:
        """Patient (x, y, z) in mm of the body-frame point (u, v, w)."""
        cx, cy, cz = self.centre_xyz_mm
        return np.array([u + cx, v + cy, w + cz])


def body_radii(params: SubjectParams, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Skin ellipse semi-axes (lateral, antero-posterior) in mm at heights ``w``."""
    a = params.half_width_mm * np.interp(w, _W_KNOTS, _WIDTH_FACTOR)
    b = params.half_depth_mm * np.interp(w, _W_KNOTS, _DEPTH_FACTOR)
    return a.astype(np.float32), b.astype(np.float32)


def wall_mm(params: SubjectParams) -> float:
    """Skin + fat + muscle thickness of the body wall."""
    return 2.0 + params.fat_mm + params.muscle_mm


def cavity_radii(params: SubjectParams, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Semi-axes of the thoracic/abdominal cavity (inside the ribs) at heights ``w``."""
    a, b = body_radii(params, w)
    inset = wall_mm(params) + RIB_SPACE_MM
    return np.maximum(a - inset, 10.0), np.maximum(b - inset, 10.0)


def spine_v(params: SubjectParams, w: np.ndarray | float) -> np.ndarray:
    """Body-frame v (mm) of the vertebral body centre at heights ``w``."""
    _, b = body_radii(params, np.asarray(w, dtype=np.float32))
    return b - params.fat_mm - params.muscle_mm - 48.0


def body_coords(params: SubjectParams, grid: Grid) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Broadcastable body-frame (w, v, u) coordinates of every voxel: (Z,1,1), (1,Y,1), (1,1,X)."""
    cx, cy, cz = params.centre_xyz_mm
    w = (grid.axis_mm("z") - cz)[:, None, None]
    v = (grid.axis_mm("y") - cy)[None, :, None]
    u = (grid.axis_mm("x") - cx)[None, None, :]
    return w, v, u


def _inside(
    u: np.ndarray, v: np.ndarray, a: np.ndarray, b: np.ndarray, du: float = 0.0, dv: float = 0.0
) -> np.ndarray:
    return ((u - du) / a) ** 2 + ((v - dv) / b) ** 2 <= 1.0


def paint_table(labels: np.ndarray, params: SubjectParams, grid: Grid) -> None:
    """The couch: a slightly concave carbon shell around a foam core, behind the patient."""
    y = grid.axis_mm("y")[:, None]
    x = grid.axis_mm("x")[None, :]
    top = params.table_top_y_mm - 0.0008 * x**2  # the couch curves up at its sides
    within = (np.abs(x) <= 240.0) & (y >= top) & (y <= top + 40.0)
    core = within & (y >= top + 3.0) & (y <= top + 37.0) & (np.abs(x) <= 236.0)
    plane = np.where(core, Tissue.TABLE_CORE, np.where(within, Tissue.TABLE_SHELL, 0))
    labels[:, plane > 0] = plane[plane > 0].astype(np.uint8)


def paint_body_wall(labels: np.ndarray, params: SubjectParams, grid: Grid) -> None:
    """Skin, subcutaneous fat, muscle, and the soft-tissue interior (mediastinum, abdomen)."""
    w, v, u = body_coords(params, grid)
    a, b = body_radii(params, w)
    layers = (
        (0.0, Tissue.SOFT),  # skin
        (2.0, Tissue.FAT),
        (2.0 + params.fat_mm, Tissue.MUSCLE),
        (wall_mm(params), Tissue.SOFT),
    )
    for inset, tissue in layers:
        inside = _inside(u, v, np.maximum(a - inset, 1.0), np.maximum(b - inset, 1.0))
        labels[inside] = tissue
    for side in (-1.0, 1.0)[: 2 if params.arms_down >= 2 else params.arms_down]:
        _paint_arm(labels, params, grid, side)


def _paint_arm(labels: np.ndarray, params: SubjectParams, grid: Grid, side: float) -> None:
    """An arm along the body's side: skin, fat, muscle and the humerus, running along z."""
    w, v, u = body_coords(params, grid)
    a, _ = body_radii(params, w)
    du = side * (a + 40.0)  # the arm rests against the chest wall
    for inset, tissue in ((0.0, Tissue.SOFT), (2.0, Tissue.FAT), (10.0, Tissue.MUSCLE)):
        labels[_inside(u, v, 45.0 - inset, 48.0 - inset, du, 5.0)] = tissue
    labels[_inside(u, v, 12.0, 12.0, du, 5.0)] = Tissue.CORTICAL_BONE
    labels[_inside(u, v, 8.0, 8.0, du, 5.0)] = Tissue.CANCELLOUS_BONE


def lung_geometry(params: SubjectParams, w: np.ndarray, side: float) -> tuple[np.ndarray, ...]:
    """(centre u, semi-axis u, semi-axis v) of one lung's cross-section at heights ``w``."""
    ac, bc = cavity_radii(params, w)
    half_mediastinum = 22.0
    half_u = (ac - half_mediastinum) / 2.0
    centre_u = side * (half_mediastinum + half_u)
    return centre_u, half_u, bc * 0.95


def paint_lungs(labels: np.ndarray, params: SubjectParams, grid: Grid) -> None:
    """Both lungs: apex above, domed diaphragm below (the left dome lower, under the heart)."""
    w, v, u = body_coords(params, grid)
    above = np.clip((w - 40.0) / (LUNG_APEX_W_MM - 40.0), 0.0, 1.0)
    shrink = np.sqrt(np.maximum(1.0 - above**2, 0.0)) * (w < LUNG_APEX_W_MM)
    for side, dome in ((-1.0, -60.0), (1.0, -80.0)):
        cu, hu_, hv = lung_geometry(params, w, side)
        r2 = ((u - cu) / hu_) ** 2 + ((v - 5.0) / hv) ** 2
        inside = r2 <= shrink**2
        above_diaphragm = w > dome - 60.0 * np.minimum(r2, 1.0)
        labels[inside & above_diaphragm & (labels == Tissue.SOFT)] = Tissue.LUNG


def paint_abdomen(labels: np.ndarray, params: SubjectParams, grid: Grid) -> None:
    """Liver under the right dome, spleen, stomach with gas, kidneys, bowel gas, bladder."""
    w, v, u = body_coords(params, grid)
    if float(w.min()) > -70.0:
        return  # the scan ends above the diaphragm: nothing abdominal to draw
    cu, hu_, hv = lung_geometry(params, w, -1.0)
    r2 = np.minimum(((u - cu) / hu_) ** 2 + ((v - 5.0) / hv) ** 2, 1.0)
    ac, bc = cavity_radii(params, w)
    liver = (u < 25.0 - 0.2 * v) & (w < -63.0 - 60.0 * r2) & (w > -240.0) & _inside(u, v, ac, bc)
    labels[liver & (labels == Tissue.SOFT)] = Tissue.LIVER
    soft = np.array([Tissue.SOFT])
    a0, b0 = (float(x[0]) for x in cavity_radii(params, np.array([-150.0], dtype=np.float32)))
    put = params.to_patient
    paint_ellipsoid(
        labels,
        grid,
        put(0.62 * a0, 0.45 * b0, -130),
        (32, 45, 55),
        Tissue.LIVER,
        rotation(yaw_deg=30),
        where=soft,
    )
    paint_ellipsoid(labels, grid, put(0.3 * a0, -0.35 * b0, -115), (45, 32, 40), Tissue.SOFT)
    paint_ellipsoid(labels, grid, put(0.3 * a0, -0.55 * b0, -100), (30, 12, 18), Tissue.AIRWAY)
    for side in (-1.0, 1.0):
        paint_ellipsoid(
            labels,
            grid,
            put(side * 62, 0.55 * b0, -240),
            (28, 24, 55),
            Tissue.KIDNEY,
            rotation(yaw_deg=side * 20),
            where=soft,
        )
    rng = np.random.default_rng(params.anatomy_seed)
    for _ in range(24):  # bowel gas pockets
        centre = put(
            rng.uniform(-0.7, 0.7) * a0, rng.uniform(-0.8, 0.3) * b0, rng.uniform(-520, -280)
        )
        paint_ellipsoid(labels, grid, centre, rng.uniform(6, 16, size=3), Tissue.AIRWAY, where=soft)
    paint_ellipsoid(labels, grid, put(0, -0.45 * b0, -640), (45, 35, 40), Tissue.FLUID, where=soft)
