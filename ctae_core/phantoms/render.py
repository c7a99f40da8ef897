"""From subject parameters to an HU volume: grid → tissue labels → HU → outlier → noise."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.ndimage import gaussian_filter, gaussian_filter1d

from ctae_core.phantoms.anatomy import (
    SubjectParams,
    paint_abdomen,
    paint_body_wall,
    paint_lungs,
    paint_table,
)
from ctae_core.phantoms.grid import Grid
from ctae_core.phantoms.mediastinum import (
    paint_airways,
    paint_great_vessels,
    paint_heart,
    paint_lung_vessels,
)
from ctae_core.phantoms.skeleton import paint_skeleton
from ctae_core.phantoms.tissues import hu_lookup

HU_MIN, HU_MAX = -1024.0, 30000.0
PARTIAL_VOLUME_SIGMA_VOXELS = 0.5


@dataclass(frozen=True)
class ScanGeometry:
    """What the scanner reconstructed: field of view, voxel spacing and z coverage (mm).

    Attributes:
        fov_mm: Side of the square reconstruction field of view, centred on the isocentre.
        spacing_xy_mm: In-plane pixel spacing.
        spacing_z_mm: Distance between slices.
        w_top_mm: Top of the scan in body-frame w (mm above the heart centre).
        length_mm: Scan length along z.
    """

    fov_mm: float
    spacing_xy_mm: float
    spacing_z_mm: float
    w_top_mm: float
    length_mm: float

    def grid(self, params: SubjectParams) -> Grid:
        """The voxel grid in patient coordinates; slice 0 is the lowest (most caudal) one."""
        n_xy = max(8, int(round(self.fov_mm / self.spacing_xy_mm)))
        n_z = max(2, int(round(self.length_mm / self.spacing_z_mm)) + 1)
        half = (n_xy - 1) / 2.0 * self.spacing_xy_mm
        z0 = params.centre_xyz_mm[2] + self.w_top_mm - (n_z - 1) * self.spacing_z_mm
        return Grid(
            shape_zyx=(n_z, n_xy, n_xy),
            spacing_zyx_mm=(self.spacing_z_mm, self.spacing_xy_mm, self.spacing_xy_mm),
            origin_xyz_mm=(-half, -half, z0),
        )


@dataclass(frozen=True)
class WriteEffects:
    """Faults that live in how a series is written, not in its pixels.

    Attributes:
        intercept_offset_hu: Added to (0028,1052) Rescale Intercept while the stored pixels stay
            right, so every reader sees HU shifted by this much.
        dropped_planes: Plane indices whose files are not written (a missing slab).
    """

    intercept_offset_hu: float = 0.0
    dropped_planes: tuple[int, ...] = ()


@dataclass
class Scene:
    """A phantom being built; outlier hooks edit it in place."""

    params: SubjectParams
    geometry: ScanGeometry
    grid: Grid
    labels: np.ndarray
    rng: np.random.Generator
    strength: float = 0.0
    hu: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))


@dataclass(frozen=True)
class Phantom:
    """A rendered scan.

    Attributes:
        hu: int16 HU of shape (Z, Y, X), slice 0 the most caudal.
        labels: uint8 :class:`~ctae_core.phantoms.tissues.Tissue` map, same shape.
        spacing_zyx_mm: Voxel spacing in mm.
        origin_xyz_mm: Patient (LPS) position of voxel (0, 0, 0) in mm.
        effects: Faults to apply while writing the series.
    """

    hu: np.ndarray
    labels: np.ndarray
    spacing_zyx_mm: tuple[float, float, float]
    origin_xyz_mm: tuple[float, float, float]
    effects: WriteEffects = WriteEffects()


def render_labels(params: SubjectParams, grid: Grid) -> np.ndarray:
    """Tissue label volume (uint8, (Z, Y, X)) of a subject on ``grid``; later painters win."""
    labels = np.zeros(grid.shape_zyx, dtype=np.uint8)
    paint_table(labels, params, grid)
    paint_body_wall(labels, params, grid)
    paint_lungs(labels, params, grid)
    paint_abdomen(labels, params, grid)
    paint_airways(labels, params, grid)
    paint_heart(labels, params, grid)
    paint_great_vessels(labels, params, grid)
    paint_lung_vessels(labels, params, grid)
    paint_skeleton(labels, params, grid)
    return labels


def labels_to_hu(labels: np.ndarray, params: SubjectParams) -> np.ndarray:
    """Mean HU per tissue with a partial-volume blur at tissue borders (float32)."""
    hu = hu_lookup(params.tissue_hu)[labels]
    return gaussian_filter(hu, PARTIAL_VOLUME_SIGMA_VOXELS, mode="nearest", truncate=3.0)


def add_correlated_noise(
    hu: np.ndarray,
    sd_hu: float,
    rng: np.random.Generator,
    sigma_voxels: float = 0.7,
    planes_per_chunk: int = 16,
) -> None:
    """Add in-plane correlated Gaussian noise of standard deviation ``sd_hu`` to ``hu`` in place.

    Correlated like reconstructed CT noise, so linear resampling to 3 mm keeps most of it.
    Drawn a few planes at a time, so a full-size scan never holds a second float copy.
    """
    impulse = np.zeros(2 * int(np.ceil(3 * sigma_voxels)) + 1)
    impulse[len(impulse) // 2] = 1.0
    kernel = gaussian_filter1d(impulse, sigma_voxels, truncate=3.0)
    scale = np.float32(sd_hu / float(np.sum(kernel**2)))  # std of white noise after 2-D blur
    for start in range(0, hu.shape[0], planes_per_chunk):
        count = min(planes_per_chunk, hu.shape[0] - start)
        white = rng.standard_normal((count, *hu.shape[1:]), dtype=np.float32)
        smooth = gaussian_filter(white, (0.0, sigma_voxels, sigma_voxels), truncate=3.0)
        hu[start : start + count] += smooth * scale


def to_int16_hu(hu: np.ndarray) -> np.ndarray:
    """Round to int16 HU, clipped at −1024 below (air) and at the extended CT scale above."""
    return np.rint(np.clip(hu, HU_MIN, HU_MAX)).astype(np.int16)
