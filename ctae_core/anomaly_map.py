"""A scan's anomaly map (its |error| above the |error| around it, body-masked), its hottest
region, and the local-error score taken from it.

The map is what the viewer overlays and where it opens a flagged scan; the local error is the
map's peak: one object the model failed to reproduce (metal, a cable, a valve) raises it however
large the scan is, where MSE_m averages the object away over the body and falls with scan size.

Why above its surroundings, and why not smoothed: a real scan's |error| is high along whole
edges and over whole regions (bone, bowel gas, a sharp kernel's texture, the cut faces at the
scan's ends), and a small object's error is no higher than theirs, only more compact. Taking off
each voxel's surroundings (a Gaussian of ``BACKGROUND_SIGMA_MM``) keeps what stands out of its
neighbourhood. Measured on real-anatomy development cohorts (README, *Reconstruction and
localisation*): the hottest region within 10 mm of the inserted object for 0.889 of 54 objects
with the U-Net (0.574 with the |error| smoothed by one voxel, as the map was before) and 0.451
of 293 with `tiny` at 6 mm (0.263); on six held-out seeds 0.80 and 0.46 (0.43 and 0.20).
Smoothing first (σ 1.5 mm) lowered the U-Net's to 0.833, and taking single hot voxels for noise
(a 2×2×2 grey opening first) to 0.352 / 0.181: on a 3–6 mm grid a snap, a wire or a valve ring
is one to a few voxels.

Why the peak is sought away from the first and last slice: they are the scan's cut faces, where
the model saw anatomy on one side and padding on the other, and a dense voxel cut by them is
reconstructed worst. On six real-anatomy development cohorts 69 % of the inliers' U-Net map peaks
lay on an end slice (35 % of the outliers'). The map keeps its values there (an object that runs
through the cut keeps its voxels: zeroing the end slices lowered the U-Net's voxel AP 0.341 ->
0.282 on six held-out seeds, and was reverted); only the search for the peak, and so the hottest
region and the local error, leaves them out.

Why the next hottest regions too: a real scan can hold a small dense object of its own (an ECG
electrode the patient wore, a clip), which a coarse model cannot draw either, and which can be
hotter than the anomaly. On six real-anatomy development cohorts (seeds 197–202, `tiny`), 15 of
the 16 local objects whose hottest region missed them lost to a voxel of 2,260–2,980 HU of the
base scan itself, on bases whose inliers hold such objects (their median dense volume away from
bone 12–67 mm³); the object was within 10 mm of one of the first three regions for 52 of 57
(41 of 57 for the first alone); on six held-out cohorts (209–214) 47 of 51 (36 by the first),
the U-Net's 50 (47). The viewer steps through ``REGIONS_SHOWN``; `ctae evaluate` reports both
shares.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BACKGROUND_SIGMA_MM = 6.0
"""σ (mm) of the Gaussian that gives a voxel's surroundings' |error|; the map is what lies above
it (σ 9 mm: 0.870 / 0.437 of the objects above, no subtraction 0.815 / 0.406)."""
REGION_LEVEL = 0.3
"""The hottest region is the connected part of the map at or above this share of its peak. At
half the peak (until stop 33) the region was a few voxels of the object: on development maps of
real anatomy (54 objects, a median 3.8 mL) the U-Net's region was a median 0.08 mL, its mean Dice
with the object 0.13; at 0.3 0.20 mL and 0.20, with 0.79 of the region on the object (0.80);
`tiny`'s 0.177 -> 0.195. Judged on six held-out seeds: Dice 0.184 -> 0.267 (U-Net), 0.210 -> 0.258
(`tiny`), 0.92 of the U-Net's region on the object. Lower levels spill (0.1: 0.59 on the object)."""

REGIONS_SHOWN = 3
"""How many hottest regions the viewer outlines and steps through, hottest first."""
REGIONS_APART_MM = 10.0
"""Each next region is sought this far (mm) from the regions before it, or further: one object's
neighbourhood is not offered twice."""


@dataclass(frozen=True)
class HotRegion:
    """Where a scan's anomaly map is hottest.

    Attributes:
        centre_zyx: Voxel (Z, Y, X) of the map's peak away from the cut faces
            (:func:`hottest_region_mask`), on the grid the map was given on.
        volume_ml: Volume of the connected region at or above ``REGION_LEVEL`` × peak, mL.
        peak_hu: The map's peak, HU (smoothed |error|).
    """

    centre_zyx: tuple[int, int, int]
    volume_ml: float
    peak_hu: float

    def centre_mm(self, spacing_mm: float) -> tuple[float, float, float]:
        """The centre in mm from the first voxel's centre, at ``spacing_mm``."""
        return tuple(float(i) * spacing_mm for i in self.centre_zyx)  # type: ignore[return-value]


def anomaly_map(abs_error_hu: np.ndarray, body: np.ndarray, spacing_mm: float,
                background_mm: float = BACKGROUND_SIGMA_MM) -> np.ndarray:
    """|error| (HU) above its surroundings' (a Gaussian of σ ``background_mm``), ≥ 0, zero
    outside the body mask: float32 (Z, Y, X) on the grid of ``spacing_mm``."""
    from scipy.ndimage import gaussian_filter

    error = np.asarray(abs_error_hu, dtype=np.float32)
    if error.shape != np.shape(body):
        raise ValueError(f"|error| {error.shape} and body mask {np.shape(body)} differ in shape")
    if spacing_mm <= 0 or background_mm <= 0:
        raise ValueError(f"spacing ({spacing_mm} mm) and background σ ({background_mm} mm) must be > 0")
    around = gaussian_filter(error, sigma=background_mm / spacing_mm, mode="nearest")
    above = np.maximum(error - around, np.float32(0))
    return np.where(np.asarray(body, dtype=bool), above, np.float32(0)).astype(np.float32, copy=False)


def hottest_region_mask(amap: np.ndarray, level: float = REGION_LEVEL,
                        at: tuple[int, int, int] | None = None,
                        ) -> tuple[np.ndarray, tuple[int, int, int], float]:
    """The hottest region's rule, the one place it is written: the map's peak away from the cut
    faces (the first and last slice along Z; a scan of fewer than three slices has none) and the
    6-connected voxels around it at or above ``level`` × peak, the end slices included. Returns
    (mask, peak voxel (Z, Y, X), peak); the mask is empty when that peak is not positive.

    Args:
        amap: An anomaly map (Z, Y, X), as ``anomaly_map`` gives it or as `ctae score` stored it
            (int16 HU; a memory map is fine).
        level: Share of the peak that bounds the region, in (0, 1].
        at: The region's peak voxel where `ctae score` chose it (the stored hottest region: the
            peak of the region inside the patient or of its outer shell, whichever its evidence
            rates rarer, ``ctae_core.error_regions``); None, or a voxel off the map or dark on
            it (a stored voxel of a cropped scan can land on the model's crop): the map's peak.
    """
    from scipy.ndimage import label

    if not 0 < level <= 1:
        raise ValueError(f"level must be in (0, 1], not {level}")
    amap = np.asarray(amap, dtype=np.float32)
    if amap.size == 0:
        raise ValueError("the anomaly map is empty")
    if at is not None and all(0 <= int(i) < n for i, n in zip(at, amap.shape, strict=True)) \
            and amap[tuple(int(i) for i in at)] > 0:
        peak_at = tuple(int(i) for i in at)
    else:
        cut = 1 if amap.shape[0] >= 3 else 0
        inner = amap[cut:amap.shape[0] - cut]
        z, y, x = np.unravel_index(int(np.argmax(inner)), inner.shape)
        peak_at = (int(z) + cut, int(y), int(x))
    peak = float(amap[peak_at])
    if peak <= 0:
        return np.zeros(amap.shape, dtype=bool), peak_at, 0.0  # type: ignore[return-value]
    labels, _ = label(amap >= level * peak)  # scipy's default structure: 6-connected
    return labels == labels[peak_at], peak_at, peak  # type: ignore[return-value]


def hottest_regions(amap: np.ndarray, spacing_mm: float, count: int = REGIONS_SHOWN,
                    level: float = REGION_LEVEL, apart_mm: float = REGIONS_APART_MM,
                    first_at: tuple[int, int, int] | None = None,
                    ) -> list[tuple[np.ndarray, tuple[int, int, int], float]]:
    """Up to ``count`` hottest regions, hottest first, as (mask, peak voxel, peak): the first is
    :func:`hottest_region_mask`'s (around ``first_at`` where given: the stored hottest region;
    the map's own peak where it lies off the map or dark); each next one is that rule on the map
    with the regions before it, and ``apart_mm`` around them, left out. Fewer when nothing
    positive is left."""
    from scipy.ndimage import distance_transform_edt

    if count < 1:
        raise ValueError(f"count must be >= 1, not {count}")
    rest = np.array(amap, dtype=np.float32)  # a copy: the caller's map stays as it is
    regions: list[tuple[np.ndarray, tuple[int, int, int], float]] = []
    for k in range(count):
        mask, peak_at, peak = hottest_region_mask(rest, level, first_at if k == 0 else None)
        if peak <= 0:
            break
        regions.append((mask, peak_at, peak))
        if len(regions) < count:  # within the region's box grown by apart_mm: all that can be near
            reach = int(np.ceil(apart_mm / spacing_mm)) + 1
            where = np.nonzero(mask)
            box = tuple(slice(max(int(i.min()) - reach, 0), int(i.max()) + reach + 1) for i in where)
            near = distance_transform_edt(~mask[box], sampling=spacing_mm) <= apart_mm
            rest[box][near] = 0
    return regions


def region_labels(regions: list[tuple[np.ndarray, tuple[int, int, int], float]],
                  shape: tuple[int, ...]) -> np.ndarray:
    """The regions of :func:`hottest_regions` as one uint8 volume: k in the k-th (1 = hottest),
    0 elsewhere."""
    labels = np.zeros(shape, dtype=np.uint8)
    for k, (mask, _, _) in enumerate(regions, start=1):
        labels[mask] = k
    return labels


def hottest_region(amap: np.ndarray, spacing_mm: float, level: float = REGION_LEVEL,
                   at: tuple[int, int, int] | None = None) -> HotRegion:
    """The peak of an anomaly map (or the voxel ``at``) and the volume of the region around it
    (:func:`hottest_region_mask`) at ``spacing_mm``."""
    mask, peak_at, peak = hottest_region_mask(amap, level, at)
    return HotRegion(peak_at, int(mask.sum()) * spacing_mm**3 / 1000.0, peak)


def rescale_index(zyx: tuple[int, int, int], from_mm: float, to_mm: float,
                  shape: tuple[int, ...] | None = None) -> tuple[int, int, int]:
    """A voxel index on a ``from_mm`` grid as the index of the same place on a ``to_mm`` grid
    (both starting at the same corner), clipped into ``shape`` when given."""
    scale = from_mm / to_mm
    out = [int(np.floor((i + 0.5) * scale)) for i in zyx]
    if shape is not None:
        out = [min(max(v, 0), int(n) - 1) for v, n in zip(out, shape, strict=True)]
    return tuple(out)  # type: ignore[return-value]
