"""The anomaly map's peak inside the patient and in the body's outer shell, taken apart.

Why two peaks: many real patients carry dense objects of their own on the skin (ECG leads and
electrodes, cables), which the model cannot draw and which hold their scan's map peak. On two
real-anatomy development cohorts (seeds 321 and 322) the inliers copied from the two sharp chest
bases peaked outside the patient for 76 % and 82 % of them, at 2,300–2,500 HU of input: the bases'
own leads. An object inserted inside such a scan (a valve, a pacemaker, a screw) then competes
with the lead for one peak, and a lead on a scan whose archive seldom has one competes with
everyone's bone. Taken apart, each peak is compared with the same region's peaks among scans
acquired alike (``ctae_core.outlier_score``): the local error ranked the inserted local objects
at 0.980 instead of 0.935 (AUROC, the two seeds; a shell 5 or 20 mm deep: 0.978).

The patient, per slice: the largest connected part above ``PATIENT_HU`` (the couch, the arms
beside the body and the air are other parts), holes filled (lungs and bowel gas are inside);
its interior lies deeper than ``INTERIOR_MARGIN_MM`` below that outline. The shell is the rest of
the body mask (HU > −990): the skin's outer layer and whatever lies on or beside it.
"""

from __future__ import annotations

import numpy as np

PATIENT_HU = -500.0
"""The patient's outline in each slice: the largest connected part above this HU (soft tissue
against air; lung inside is filled)."""
INTERIOR_MARGIN_MM = 10.0
"""Voxels deeper than this below the patient's outline are its interior: an electrode, a lead or
a cable on the skin lies in the shell, a valve, a pacemaker can or a screw inside."""


def patient_interior(hu: np.ndarray, spacing_mm: float, margin_mm: float = INTERIOR_MARGIN_MM
                     ) -> np.ndarray:
    """Bool (Z, Y, X): the voxels deeper than ``margin_mm`` (in-plane) inside each slice's
    patient outline (the module's docstring). A slice without anything above ``PATIENT_HU`` has
    no interior."""
    from scipy import ndimage

    if spacing_mm <= 0 or margin_mm < 0:
        raise ValueError(f"spacing ({spacing_mm} mm) must be > 0 and margin ({margin_mm} mm) >= 0")
    hu = np.asarray(hu)
    if hu.ndim != 3:
        raise ValueError(f"expected a (Z, Y, X) HU volume, got shape {hu.shape}")
    interior = np.zeros(hu.shape, dtype=bool)
    for z in range(hu.shape[0]):
        parts, n = ndimage.label(hu[z] > PATIENT_HU)
        if n == 0:
            continue
        largest = int(np.argmax(np.bincount(parts.ravel())[1:])) + 1
        patient = ndimage.binary_fill_holes(parts == largest)
        interior[z] = ndimage.distance_transform_edt(patient, sampling=spacing_mm) > margin_mm
    return interior


def region_peaks(amap: np.ndarray, hu: np.ndarray, spacing_mm: float,
                 margin_mm: float = INTERIOR_MARGIN_MM) -> tuple[float, float]:
    """(interior peak, shell peak) of an anomaly map, HU, sought away from the scan's cut faces
    (the first and last slice, as ``ctae_core.anomaly_map.hottest_region_mask`` seeks its
    peak); 0.0 for a region with no voxel above 0. ``hu`` is the scan on the map's grid."""
    (inner, _), (shell, _) = _region_maxima(amap, hu, spacing_mm, margin_mm)
    return inner, shell


def region_peak_at(amap: np.ndarray, hu: np.ndarray, spacing_mm: float, interior: bool,
                   margin_mm: float = INTERIOR_MARGIN_MM) -> tuple[int, int, int] | None:
    """The voxel (Z, Y, X) of the interior's (``interior``) or the shell's peak, sought as in
    ``region_peaks``; None when that region has no voxel above 0."""
    return _region_maxima(amap, hu, spacing_mm, margin_mm)[0 if interior else 1][1]


def _region_maxima(amap: np.ndarray, hu: np.ndarray, spacing_mm: float, margin_mm: float
                   ) -> tuple[tuple[float, tuple[int, int, int] | None], ...]:
    """((peak, voxel) of the interior, (peak, voxel) of the shell), over every slice but the
    first and last; (0.0, None) for a region with no voxel above 0. The patient's outline is
    drawn only for the slices that can still hold a region's peak, hottest slice first (a map is
    mostly dark: a few slices decide), so the result is the whole scan's at a fraction of it."""
    if np.shape(amap) != np.shape(hu):
        raise ValueError(f"anomaly map {np.shape(amap)} and HU volume {np.shape(hu)} differ in shape")
    amap = np.asarray(amap, dtype=np.float32)
    if amap.ndim != 3:
        raise ValueError(f"expected a (Z, Y, X) anomaly map, got shape {amap.shape}")
    cut = 1 if amap.shape[0] >= 3 else 0
    slices = np.arange(cut, amap.shape[0] - cut)
    slice_peak = amap[slices].reshape(len(slices), -1).max(axis=1) if len(slices) else np.zeros(0)
    best: list[tuple[float, tuple[int, int, int] | None]] = [(0.0, None), (0.0, None)]
    for z in slices[np.argsort(-slice_peak, kind="stable")]:
        if amap[z].max() <= min(best[0][0], best[1][0]):
            break  # no later slice can raise either region's peak
        inside = patient_interior(np.asarray(hu[z:z + 1]), spacing_mm, margin_mm)[0]
        for k, where in enumerate((inside, ~inside)):
            values = np.where(where, amap[z], 0.0)
            y, x = np.unravel_index(int(np.argmax(values)), values.shape)
            if values[y, x] > best[k][0]:
                best[k] = (float(values[y, x]), (int(z), int(y), int(x)))
    return best[0], best[1]
