"""How a scan was acquired, measured on its stored HU volume: image noise and the body's
outline in the field of view, streaks across it and rings about the scanner's axis. Measured once per scan by
`ctae score` (``scans`` table) and used as evidence by the run's outlier score
(ctae_core/outlier_score.py).

Why: some outlier kinds change no voxel in a way an autoencoder finds hard to reproduce, so
MSE_m cannot see them — heavy noise and thin streaks (averaged away by the model's coarse
input), arms beside the body and a body cut by the field of view (normal anatomy in an unusual
place). Their signs are simple to measure directly:

- ``noise_hu``: the standard deviation of image noise, estimated robustly from differences of
  neighbouring soft-tissue voxels (``ctae_core.noise``; 1.4826 · MAD / √2, the MAD a grouped
  median since v16), so edges and anatomy barely count. Since v17 the noise evidence reads the
  same estimate made at ingest on the acquired grid (``native_noise_hu``), where it is noise
  rather than anatomy;
- ``body_profile``: the body's outline as its extent from the centroid in
  ``PROFILE_DIRECTIONS`` directions, divided by the mean extent (so body size cancels) and
  averaged over axial slices — arms at the sides, a cut edge or an odd shape change it;
- ``body_edge_mm``: how much of the image border the body lies on, per slice (mm): 0 for a
  body wholly inside the field of view;
- ``field_edge_mm``: how much of the body lies on the edge of the *reconstructed* field, per
  slice (mm): within ``FIELD_EDGE_MM`` of a pixel that holds the stored HU floor in every plane
  (``PADDING_HU``: the padding a scanner writes outside its reconstruction circle), where that
  padding's edge is a circle (``CIRCLE_RMS_VOXELS``). A body cut there reached beyond the
  scanned field — its missing part was never measured, unlike a body cut by the image border,
  which a reconstruction with a smaller display field leaves out on purpose (a lung kernel's
  targeted field). A square field padded into a larger image (re-gridded) is such a display
  cut, and air clipped to the floor by a wrong rescale follows the body's outline: neither
  edge is a circle. 0 for a body inside the circle or a scan without padding;
- ``streak_contrast``: the straight line through the body's soft tissue that differs most from
  the same line in the planes ``STREAK_NEIGHBOUR_MM`` above and below — streaks from beam
  hardening, photon starvation or motion cross the body in straight lines that belong to one
  plane's reconstruction and change from plane to plane, while anatomy's edges curve, and its
  few straight ones (the spine's, the diaphragm's, the table's) run on through the neighbours.
  Each plane's soft tissue and fat (its local mean in ``STREAK_TISSUE_HU``, inside the body
  outline without the couch, ``STREAK_EROSION`` voxels in from the skin, nothing above
  ``STREAK_BONE_HU`` within 2 voxels) is high-passed, divided by the plane's robust noise and
  clipped at ±``STREAK_CLIP`` (an organ edge is many noise units for a few voxels; a streak a
  few units all along its length), then projected along ``STREAK_DIRECTIONS`` directions (a
  Radon transform by binning): per line, its mean in the searched plane minus the mean of the
  same line in the two neighbours, over the difference's standard error; the maximum over
  lines and planes. Only planes with both neighbours are searched (since v15): against one
  neighbour the difference keeps anatomy's steady change along z, which the mean of both
  cancels, and the volume's first and last planes gave real inliers their largest values. The
  benchmark's real inliers give ~3.7–9.1 (1st percentile to the largest over stop 29's fourteen
  development seeds; ~8–20 by the measure before v14); a streak across the body more. (Until
  v14 a line's own sum was scored: real inliers' straight edges raised it and hid all but the
  strongest streaks. A streak that stays the same
  through a slab thicker than 2 · ``STREAK_NEIGHBOUR_MM`` is weakened to its two ends; the
  metal that casts such streaks is evidence of its own. The search of still earlier builds
  looked in the air around the body, where inserted streaks of the real-anatomy benchmark do
  not reach and real couches and body edges are straight.)
- ``ring_contrast``: how consistently the tissue at one distance from the image centre (the
  scanner's axis, where ring artefacts from a miscalibrated detector element are centred) is
  brighter or darker than its surroundings at every angle: high-passed soft tissue and fat
  inside the body (edges and bone left out) is averaged per ``RING_SECTORS`` angular sectors
  of each 1-voxel radius on up to ``RING_MAX_PLANES`` planes; per radius, the median of those
  sector means over their robust standard error (a ring keeps its sign all the way round,
  anatomy does not); the maximum over the radii whose tissue reaches at least
  ``RING_MIN_SECTORS`` sectors. Since v23 the air around the body is read as well
  (``RING_AIR_HU``, ``RING_AIR_CLEARANCE`` voxels clear of anything denser and of the floor):
  a detector element's ring is drawn across the whole reconstructed field, so a ring beyond a
  body's short half-axis — there the body holds only its flanks, too few sectors — still reaches
  all the way round through the air, where no anatomy keeps a sign. Real inliers give ~3–15
  (1st percentile to the largest over fourteen development seeds; with the air ~4–17 over stop
  64's six), rings tens. (Until v15 every radius
  counted: beyond a wide body's short half-axis only its flanks lie at that distance, a few
  sectors whose own layers of skin, fat and muscle keep one sign from plane to plane, and the
  largest real inliers' rings were such radii.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.stats import median_abs_deviation

from ctae_core.noise import noise_estimate

PROFILE_DIRECTIONS = 32
"""Directions of the body outline profile (every 11.25°)."""
OUTLINE_HU = -500.0
"""Body (and couch) voxels for the outline and the streak search: above this. Higher than the
body mask's ``ctae_core.stats.BODY_HU`` (−990), which admits air noise and would give a noisy
scan a ragged outline."""
OPENING_ITERATIONS = 2
"""Binary opening that detaches the couch and thin lines from the body before the largest
component is taken (two voxels: 6 mm at ctae's 3 mm spacing)."""
MAX_SLICES = 24
"""Axial slices measured for the outline, evenly spaced; enough for a stable mean."""
STREAK_DIRECTIONS = 90
"""Line directions of the streak search (every 2°: a line 100 voxels long 1° off its bin's
direction drifts under 2 voxels)."""
STREAK_TISSUE_HU = (-200.0, 300.0)
"""Voxels whose local mean (``STREAK_HIGHPASS``²) lies here are searched: fat, soft tissue,
enhanced organs."""
STREAK_BONE_HU = 300.0
"""Voxels with anything above this within 2 voxels (bone, contrast, metal edges) are left out."""
STREAK_EROSION = 2
"""Voxels in from the skin, so that the body's own outline is not a line."""
STREAK_HIGHPASS = 5
"""Side of the local mean subtracted (voxels)."""
STREAK_CLIP = 2.0
"""High-passed values are clipped at ± this many noise units before the lines are summed."""
STREAK_MAX_PLANES = 32
"""Axial planes searched, evenly spaced (every second at most, every fourth for scans over
128 planes: 12 mm at 3 mm, less than the 15 mm a streak spans at least). A fixed number keeps
the maximum over planes from growing with scan length."""
STREAK_MIN_VOXELS = 30
"""Lines through fewer tissue voxels are not scored (their noise is not averaged down)."""
STREAK_NEIGHBOUR_MM = 6.0
"""Each searched plane's lines are compared with the same lines this far above and below: a
streak belongs to one plane's reconstruction and changes from plane to plane, anatomy's
straight edges (the spine's, the diaphragm's, the table's) run on through both neighbours."""
RING_SECTORS = 16
RING_MAX_PLANES = 32
RING_TISSUE_HU = (-200.0, 300.0)
"""Voxels the ring search reads: fat, soft tissue and enhanced organs."""
RING_EDGE_HU = 150.0
"""Voxels whose high-passed value exceeds this (organ and bone edges) are left out."""
RING_AIR_HU = (-1010.0, -900.0)
"""Air the ring search reads too (its 5 × 5 local mean here, since v23): noise about -1000 HU,
part of it clipped at the stored floor. A local mean at or below the lower end is the floor: a
scanner's padding outside its reconstruction circle, or that circle's edge where noise was
added to the padding."""
RING_AIR_CLEARANCE = 3
"""Voxels (8-connected) between the air read and anything denser than ``OUTLINE_HU`` (skin,
couch, clothing) or at the floor (``RING_AIR_HU``): the reconstruction circle's edge is itself
a ring about the centre, and a body's or couch's edge would leak into the 5 × 5 high-pass."""
RING_MIN_SAMPLES = 40
"""Sector means a radius needs (over all planes) to be scored."""
RING_MIN_RADIUS = 3
"""Radii (voxels) below this hold too few voxels per sector."""
RING_MIN_SECTORS = 12
"""Sectors a radius's tissue must reach (over the planes read) to be scored: three quarters of
the way round. A ring is there at every angle; a radius that only crosses the body's flanks (a
wide chest or abdomen beyond its short half-axis) holds a few sectors of the body's own
peripheral layers, consistent from plane to plane. On the real-anatomy development seeds the
largest inliers' rings lay there; requiring 8 of the 16 sectors still let them in, requiring
all 16 lost inserted rings as well (README "Detection quality on real anatomy")."""
PADDING_HU = -1024.0
"""The stored HU floor (``ctae_core.io.pixel_decoding.HU_FLOOR``; ingest clips a scanner's padding
of -2048 or -3024 to it). A pixel at it in every plane lies outside the reconstructed field: air
holds noise about -1000 HU and reaches the floor in some planes, not in all."""
FIELD_EDGE_MM = 6.0
"""Body voxels this close to a padded pixel (``PADDING_HU``) lie on the reconstructed field's
edge: the outline's opening (``OPENING_ITERATIONS``) and the resampling to 3 mm move a cut edge
up to two voxels back from the padding."""
CIRCLE_RMS_VOXELS = 1.5
"""A padded edge is a reconstruction circle when a circle fitted to the field's pixels next to
the padding (off the image border) leaves less RMS residual than this. On the real-anatomy
development seeds 297–304 the circles left 0.3–0.9 voxels, square fields padded into a larger
image and air clipped by a wrong rescale 4.6–10.9."""
CIRCLE_MIN_PIXELS = 20
"""Fewer edge pixels than this fit no circle."""
_CROSS = ndimage.generate_binary_structure(2, 1)
_SQUARE = ndimage.generate_binary_structure(2, 2)


@dataclass(frozen=True)
class AcquisitionFeatures:
    """Noise, body outline and streak contrast of one scan; NaN (profile: empty) where nothing
    was measurable, e.g. no soft tissue, no body in any slice or no air around it (an
    intensity offset can cause all three)."""

    noise_hu: float
    body_edge_mm: float
    body_profile: tuple[float, ...]
    streak_contrast: float
    ring_contrast: float = float("nan")
    field_edge_mm: float = float("nan")


def acquisition_features(hu: np.ndarray, spacing_mm: float) -> AcquisitionFeatures:
    """Noise, body outline and streak contrast of a (Z, Y, X) HU volume with isotropic
    ``spacing_mm``.

    Raises:
        ValueError: the volume is not 3-D or is empty.
    """
    if hu.ndim != 3 or hu.size == 0:
        raise ValueError(f"hu must be a non-empty (Z, Y, X) volume, got shape {hu.shape}")
    near_padding = _near_padding(hu, spacing_mm)
    profiles, edges, field_edges = [], [], []
    for k in np.unique(np.linspace(0, hu.shape[0] - 1, MAX_SLICES).round().astype(int)):
        body = _body(hu[k])
        if body is None:
            continue
        profiles.append(_profile(body))
        edges.append(_border_voxels(body) * spacing_mm)
        field_edges.append(np.count_nonzero(body & near_padding) * spacing_mm)
    return AcquisitionFeatures(
        noise_hu=noise_estimate(hu),
        body_edge_mm=float(np.mean(edges)) if edges else float("nan"),
        body_profile=tuple(float(v) for v in np.mean(profiles, axis=0)) if profiles else (),
        streak_contrast=streak_contrast(hu, spacing_mm),
        ring_contrast=ring_contrast(hu),
        field_edge_mm=float(np.mean(field_edges)) if field_edges else float("nan"),
    )


def streak_contrast(hu: np.ndarray, spacing_mm: float) -> float:
    """Signal-to-noise ratio of the straight line through the body's soft tissue that differs
    most from the same line in the planes ``STREAK_NEIGHBOUR_MM`` above and below, in a
    (Z, Y, X) HU volume with isotropic ``spacing_mm`` (module docstring); NaN when no plane
    holds enough tissue, no plane has a plane that far both above and below it, or no line
    crosses ``STREAK_MIN_VOXELS`` of it in a plane and its neighbours."""
    n_z, ny, nx = hu.shape
    gap = max(1, int(round(STREAK_NEIGHBOUR_MM / spacing_mm)))
    if n_z <= 2 * gap:
        return float("nan")
    # only planes with both neighbours: against their mean a line's steady change along z
    # cancels (a second difference), against one neighbour it would not
    searched = n_z - 2 * gap
    picked = np.unique(np.linspace(gap, n_z - 1 - gap, min(STREAK_MAX_PLANES, (searched + 1) // 2)).round())
    picked = picked.astype(int)
    loaded = np.unique(np.concatenate([picked - gap, picked, picked + gap]))
    tissue, weight_map = _streak_weights(hu[loaded].astype(np.float32))
    if not tissue.any():
        return float("nan")
    row, row_below, row_above = (np.searchsorted(loaded, planes)
                                 for planes in (picked, picked - gap, picked + gap))
    k, y, x = np.nonzero(tissue)
    weight = weight_map[k, y, x]
    n_bins = int(np.ceil(np.hypot(ny, nx))) + 2
    offset = (k * n_bins + n_bins // 2).astype(np.float32)  # each plane's own run of bins
    y, x = (y - ny / 2.0).astype(np.float32), (x - nx / 2.0).astype(np.float32)
    best = float("nan")  # stays NaN where no line crosses STREAK_MIN_VOXELS tissue voxels
    with np.errstate(divide="ignore", invalid="ignore"):
        for angle in np.linspace(0.0, np.pi, STREAK_DIRECTIONS, endpoint=False):
            key = np.rint(x * np.float32(np.cos(angle)) + y * np.float32(np.sin(angle)) + offset)
            key = key.astype(np.int32)
            shape = (loaded.size, n_bins)
            total = np.bincount(key, weights=weight, minlength=loaded.size * n_bins).reshape(shape)
            count = np.bincount(key, minlength=loaded.size * n_bins).reshape(shape)
            mean = total / count
            c_p, c_below, c_above = count[row], count[row_below], count[row_above]
            lines = (np.minimum(np.minimum(c_p, c_below), c_above) >= STREAK_MIN_VOXELS)
            if not lines.any():
                continue
            reference = (mean[row_below] + mean[row_above]) / 2.0
            # the difference in units of its standard error (one voxel's weight spread = 1)
            spread = np.sqrt(1.0 / c_p + (1.0 / c_below + 1.0 / c_above) / 4.0)
            strongest = float((np.abs(mean[row] - reference) / spread)[lines].max())
            best = strongest if not best >= strongest else best
    return best


def _streak_weights(planes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The streak search's voxels of each (Y, X) plane of ``planes`` (module docstring; a plane
    with fewer than 10 · ``STREAK_MIN_VOXELS`` of them has none) and every voxel's high-passed
    value in its plane's noise units, clipped at ±``STREAK_CLIP`` (read at those voxels)."""
    inside = np.zeros(planes.shape, dtype=bool)
    for k, plane in enumerate(planes):
        body = _body(plane)
        if body is not None:
            inside[k] = ndimage.binary_erosion(body, structure=_SQUARE, iterations=STREAK_EROSION)
    local = ndimage.uniform_filter(planes, size=(1, STREAK_HIGHPASS, STREAK_HIGHPASS))
    tissue = (inside & (local > STREAK_TISSUE_HU[0]) & (local < STREAK_TISSUE_HU[1])
              & (ndimage.maximum_filter(planes, size=(1, 5, 5)) <= STREAK_BONE_HU))
    detail = planes - local
    noise = np.full(len(planes), np.inf, dtype=np.float32)
    for k in range(len(planes)):
        values = detail[k][tissue[k]]
        if values.size >= 10 * STREAK_MIN_VOXELS:
            noise[k] = float(median_abs_deviation(values, scale="normal")) + 1.0
    tissue &= np.isfinite(noise)[:, None, None]
    return tissue, np.clip(detail / noise[:, None, None], -STREAK_CLIP, STREAK_CLIP)


def ring_contrast(hu: np.ndarray) -> float:
    """How consistently one radius about the image centre of a (Z, Y, X) HU volume is brighter
    or darker than its surroundings at every angle (module docstring); NaN when no radius holds
    enough tissue or air all the way round."""
    n_z, ny, nx = hu.shape
    yy, xx = np.indices((ny, nx))
    dy, dx = yy - (ny - 1) / 2.0, xx - (nx - 1) / 2.0
    radius = np.hypot(dy, dx).round().astype(int)
    sector = (np.floor((np.arctan2(dy, dx) + np.pi) / (2 * np.pi) * RING_SECTORS).astype(int)
              % RING_SECTORS)
    key = radius * RING_SECTORS + sector
    n_keys = (int(radius.max()) + 1) * RING_SECTORS
    means = []
    for k in np.unique(np.linspace(0, n_z - 1, min(RING_MAX_PLANES, n_z)).round().astype(int)):
        plane = hu[k].astype(np.float32)
        body = _body(plane)
        if body is None:
            continue
        local = ndimage.uniform_filter(plane, size=5)
        detail = plane - local
        low, high = RING_TISSUE_HU
        # 2 voxels off the body in every direction (8-connected): the 5 × 5 mean sees no air
        tissue = ndimage.binary_erosion(body, structure=_SQUARE, iterations=2) & (plane > low) & (plane < high)
        # clear of skin, couch and clothing, and of the floor: a scanner's padding outside its
        # reconstruction circle (a circle about the centre itself) and the field's noisy edge
        edges = (plane > OUTLINE_HU) | (local <= RING_AIR_HU[0])
        air = ~ndimage.binary_dilation(edges, structure=_SQUARE, iterations=RING_AIR_CLEARANCE) & (local < RING_AIR_HU[1])
        read = (tissue | air) & (np.abs(detail) < RING_EDGE_HU)
        total = np.bincount(key[read], weights=detail[read], minlength=n_keys)
        count = np.bincount(key[read], minlength=n_keys)
        with np.errstate(invalid="ignore", divide="ignore"):
            means.append(np.where(count >= 2, total / count, np.nan))
    if not means:
        return float("nan")
    per_radius = np.stack(means).reshape(len(means), -1, RING_SECTORS).transpose(1, 0, 2)
    best = float("nan")
    for r in range(RING_MIN_RADIUS, per_radius.shape[0]):
        read = np.isfinite(per_radius[r])  # (planes, sectors)
        values = per_radius[r][read]
        if values.size < RING_MIN_SAMPLES or np.count_nonzero(read.any(axis=0)) < RING_MIN_SECTORS:
            continue
        centre = float(np.median(values))
        spread = float(median_abs_deviation(values, scale="normal")) + 1e-6
        strength = abs(centre) / (spread / np.sqrt(values.size))
        best = strength if not best >= strength else best
    return best


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """``mask`` with every background region that does not reach the plane's edge filled (as
    ``ndimage.binary_fill_holes``, by one labelling instead of iterated dilations)."""
    labels, _ = ndimage.label(~mask)
    outside = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    return mask | ~np.isin(labels, outside[outside > 0]) & (labels > 0)


def _body(plane: np.ndarray) -> np.ndarray | None:
    """The largest body region of an axial plane, holes filled; None if the plane has none."""
    mask = ndimage.binary_opening(plane > OUTLINE_HU, structure=_CROSS, iterations=OPENING_ITERATIONS)
    labels, n = ndimage.label(mask)
    if n == 0:
        return None
    sizes = ndimage.sum_labels(mask, labels, index=np.arange(1, n + 1))
    return _fill_holes(labels == 1 + int(np.argmax(sizes)))


def _profile(body: np.ndarray) -> np.ndarray:
    """Extent of the region from its centroid per direction, divided by the mean extent."""
    y, x = np.nonzero(body)
    dy, dx = y - y.mean(), x - x.mean()
    direction = np.floor((np.arctan2(dy, dx) + np.pi) / (2 * np.pi) * PROFILE_DIRECTIONS)
    direction = direction.astype(int) % PROFILE_DIRECTIONS
    extent = np.zeros(PROFILE_DIRECTIONS)
    np.maximum.at(extent, direction, np.hypot(dy, dx))
    return extent / max(float(extent.mean()), 1e-9)


def _near_padding(hu: np.ndarray, spacing_mm: float) -> np.ndarray:
    """(Y, X) pixels within ``FIELD_EDGE_MM`` of one that holds ``PADDING_HU`` in every plane,
    where that padding's edge is a reconstruction circle (``_circular_edge``); none otherwise."""
    padded = np.all(hu <= PADDING_HU, axis=0)
    if not padded.any() or not _circular_edge(padded):
        return np.zeros_like(padded)
    steps = max(1, int(round(FIELD_EDGE_MM / spacing_mm)))
    return ndimage.binary_dilation(padded, structure=_CROSS, iterations=steps)


def _circular_edge(padded: np.ndarray) -> bool:
    """Whether the reconstructed field's pixels next to ``padded`` ones, off the image border,
    lie on one circle (an algebraic least-squares fit, RMS residual < ``CIRCLE_RMS_VOXELS``)."""
    edge = ~padded & ndimage.binary_dilation(padded, structure=_CROSS)
    edge[[0, -1], :] = False
    edge[:, [0, -1]] = False
    y, x = (c.astype(np.float64) for c in np.nonzero(edge))
    if y.size < CIRCLE_MIN_PIXELS:
        return False
    design = np.column_stack([2.0 * x, 2.0 * y, np.ones_like(x)])
    (cx, cy, c), *_ = np.linalg.lstsq(design, x**2 + y**2, rcond=None)
    radius = np.sqrt(max(c + cx**2 + cy**2, 0.0))
    residual = np.hypot(x - cx, y - cy) - radius
    return float(np.sqrt(np.mean(residual**2))) < CIRCLE_RMS_VOXELS


def _border_voxels(body: np.ndarray) -> int:
    """Body voxels on the plane's outermost rows and columns."""
    ring = np.ones_like(body)
    ring[1:-1, 1:-1] = False
    return int(np.count_nonzero(body & ring))


__all__ = [
    "AcquisitionFeatures", "CIRCLE_RMS_VOXELS", "FIELD_EDGE_MM", "PADDING_HU", "PROFILE_DIRECTIONS",
    "acquisition_features", "ring_contrast", "streak_contrast",
]
