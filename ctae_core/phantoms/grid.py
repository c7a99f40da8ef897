"""The voxel grid a phantom is evaluated on, and painters for analytic shapes in mm.

Shapes are evaluated directly on the written grid (voxel centres), only inside each shape's
bounding box, so a small structure costs a few thousand voxels, not the whole volume.
Coordinates are patient LPS in mm: x to the patient's left, y to posterior, z to head.
Arrays are (Z, Y, X); plane k lies at ``z = origin_z + k * spacing_z``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Vec3 = tuple[float, float, float]


@dataclass(frozen=True)
class Grid:
    """Where the voxel centres of a phantom lie.

    Attributes:
        shape_zyx: Voxel counts (Z, Y, X).
        spacing_zyx_mm: Voxel spacing in mm (Z, Y, X).
        origin_xyz_mm: Patient position of voxel (0, 0, 0) in mm (x, y, z).
    """

    shape_zyx: tuple[int, int, int]
    spacing_zyx_mm: tuple[float, float, float]
    origin_xyz_mm: Vec3

    def axis_mm(self, axis: str) -> np.ndarray:
        """Voxel-centre coordinates (float32, mm) along ``x``, ``y`` or ``z``."""
        index = {"z": 0, "y": 1, "x": 2}[axis]
        origin = self.origin_xyz_mm[2 - index]
        count, step = self.shape_zyx[index], self.spacing_zyx_mm[index]
        return (origin + step * np.arange(count)).astype(np.float32)

    def index_range(self, axis: str, low_mm: float, high_mm: float) -> slice:
        """Slice of voxel indices whose centres may lie in [low_mm, high_mm] along ``axis``."""
        index = {"z": 0, "y": 1, "x": 2}[axis]
        origin = self.origin_xyz_mm[2 - index]
        step = self.spacing_zyx_mm[index]
        start = int(np.floor((low_mm - origin) / step))
        stop = int(np.ceil((high_mm - origin) / step)) + 1
        count = self.shape_zyx[index]
        return slice(min(max(start, 0), count), min(max(stop, 0), count))

    def box(self, low_xyz: np.ndarray, high_xyz: np.ndarray) -> tuple[slice, slice, slice]:
        """(Z, Y, X) index slices covering an axis-aligned box in mm."""
        return (
            self.index_range("z", low_xyz[2], high_xyz[2]),
            self.index_range("y", low_xyz[1], high_xyz[1]),
            self.index_range("x", low_xyz[0], high_xyz[0]),
        )

    def coords(self, box: tuple[slice, slice, slice]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Broadcastable (z, y, x) coordinate arrays in mm of the voxels in ``box``."""
        z = self.axis_mm("z")[box[0]][:, None, None]
        y = self.axis_mm("y")[box[1]][None, :, None]
        x = self.axis_mm("x")[box[2]][None, None, :]
        return z, y, x


def _empty(box: tuple[slice, slice, slice]) -> bool:
    return any(s.stop <= s.start for s in box)


def rotation(yaw_deg: float = 0.0, pitch_deg: float = 0.0, roll_deg: float = 0.0) -> np.ndarray:
    """3×3 rotation: roll about x, then pitch about y, then yaw about z (degrees)."""
    a, b, c = np.radians([yaw_deg, pitch_deg, roll_deg])
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rx = np.array([[1, 0, 0], [0, np.cos(c), -np.sin(c)], [0, np.sin(c), np.cos(c)]])
    return rz @ ry @ rx


def paint_ellipsoid(
    target: np.ndarray,
    grid: Grid,
    centre_xyz: Vec3 | np.ndarray,
    radii_xyz: Vec3 | np.ndarray,
    value: float,
    rot: np.ndarray | None = None,
    where: np.ndarray | None = None,
) -> None:
    """Set ``target`` to ``value`` inside a (rotated) ellipsoid; ``where`` limits it to labels.

    Args:
        target: (Z, Y, X) array to paint in place (labels or HU).
        grid: Geometry of ``target``.
        centre_xyz: Centre in mm.
        radii_xyz: Semi-axes in mm, along the ellipsoid's own axes.
        value: Value to write.
        rot: 3×3 rotation of the ellipsoid's axes into patient axes; identity when None.
        where: Optional tuple of label values of ``target`` that may be overwritten.
    """
    centre, radii = np.asarray(centre_xyz, float), np.asarray(radii_xyz, float)
    rot = np.eye(3) if rot is None else rot
    half = np.abs(rot) @ radii
    box = grid.box(centre - half, centre + half)
    if _empty(box):
        return
    z, y, x = grid.coords(box)
    d = (x - centre[0], y - centre[1], z - centre[2])
    total = 0.0
    for axis in range(3):  # coordinates along the ellipsoid's own axis `axis`
        q = d[0] * rot[0, axis] + d[1] * rot[1, axis] + d[2] * rot[2, axis]
        total = total + (q / radii[axis]) ** 2
    inside = total <= 1.0
    _assign(target, box, inside, value, where)


def paint_capsule(
    target: np.ndarray,
    grid: Grid,
    start_xyz: Vec3 | np.ndarray,
    end_xyz: Vec3 | np.ndarray,
    radius_mm: float,
    value: float,
    where: np.ndarray | None = None,
) -> None:
    """Set ``target`` to ``value`` within ``radius_mm`` of the segment start→end (rod, vessel)."""
    p0, p1 = np.asarray(start_xyz, float), np.asarray(end_xyz, float)
    low, high = np.minimum(p0, p1) - radius_mm, np.maximum(p0, p1) + radius_mm
    box = grid.box(low, high)
    if _empty(box):
        return
    z, y, x = grid.coords(box)
    axis = p1 - p0
    length2 = float(axis @ axis) or 1e-9
    dx, dy, dz = x - p0[0], y - p0[1], z - p0[2]
    t = np.clip((dx * axis[0] + dy * axis[1] + dz * axis[2]) / length2, 0.0, 1.0)
    dist2 = (dx - t * axis[0]) ** 2 + (dy - t * axis[1]) ** 2 + (dz - t * axis[2]) ** 2
    _assign(target, box, dist2 <= radius_mm**2, value, where)


def paint_polyline(
    target: np.ndarray,
    grid: Grid,
    points_xyz: np.ndarray,
    radius_mm: float,
    value: float,
    where: np.ndarray | None = None,
) -> None:
    """A tube of ``radius_mm`` along consecutive points (N, 3) in mm."""
    for start, end in zip(points_xyz[:-1], points_xyz[1:], strict=True):
        paint_capsule(target, grid, start, end, radius_mm, value, where)


def paint_torus(
    target: np.ndarray,
    grid: Grid,
    centre_xyz: Vec3 | np.ndarray,
    normal_xyz: Vec3 | np.ndarray,
    major_mm: float,
    minor_mm: float,
    value: float,
) -> None:
    """A ring (e.g. a valve sewing ring): circle of radius ``major_mm`` around ``normal``."""
    centre = np.asarray(centre_xyz, float)
    normal = np.asarray(normal_xyz, float)
    normal = normal / np.linalg.norm(normal)
    reach = major_mm + minor_mm
    box = grid.box(centre - reach, centre + reach)
    if _empty(box):
        return
    z, y, x = grid.coords(box)
    dx, dy, dz = x - centre[0], y - centre[1], z - centre[2]
    along = dx * normal[0] + dy * normal[1] + dz * normal[2]
    radial = np.sqrt(np.maximum(dx * dx + dy * dy + dz * dz - along * along, 0.0))
    _assign(target, box, (radial - major_mm) ** 2 + along**2 <= minor_mm**2, value, None)


def _assign(
    target: np.ndarray,
    box: tuple[slice, slice, slice],
    inside: np.ndarray,
    value: float,
    where: np.ndarray | None,
) -> None:
    view = target[box]
    inside = np.broadcast_to(inside, view.shape)
    if where is not None:
        inside = inside & np.isin(view, where)
    view[inside] = value
