"""How well a run's anomaly maps point at the inserted objects: voxel-level average precision
(the MOOD challenge's pixel track) and the share of objects whose hottest region lies within
10 mm of the object."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

NEAR_MM = 10.0
"""A hottest region this close to the object's mask (its peak voxel to the nearest mask voxel)
has found the object."""
MAX_AP_VOXELS = 4_000_000
"""Voxels the average precision is computed on at most (a seeded sample beyond that)."""


@dataclass(frozen=True)
class Localisation:
    """Localisation of one run on the scans with an object mask.

    Attributes:
        voxel_ap: Average precision of the anomaly map's values as a voxel-wise detector of the
            mask, over every voxel of every scan with a mask (NaN: no such scan).
        hit_rate: Share of those scans whose hottest region is within ``NEAR_MM`` of the mask.
        n_scans: Scans with a non-empty mask on the stored grid.
        distances_mm: Per scan, mm from the hottest region's centre to the nearest mask voxel.
    """

    voxel_ap: float
    hit_rate: float
    n_scans: int
    distances_mm: tuple[float, ...]


def distance_to_mask_mm(zyx: Sequence[int], mask: np.ndarray, spacing_mm: float) -> float:
    """mm from voxel ``zyx`` to the nearest voxel of ``mask`` (0 inside it; inf: empty mask)."""
    where = np.argwhere(mask)
    if where.size == 0:
        return float("inf")
    return float(np.sqrt((((where - np.asarray(zyx)) * spacing_mm) ** 2).sum(axis=1).min()))


def localise(maps: Sequence[np.ndarray], masks: Sequence[np.ndarray], hottest_zyx: Sequence[Sequence[int]],
             spacing_mm: float, seed: int = 0) -> Localisation:
    """Voxel AP and hits within ``NEAR_MM`` of scans given as (anomaly map, bool mask on the same
    grid, hottest voxel); scans whose mask is empty on the grid are left out."""
    from sklearn.metrics import average_precision_score

    kept = [(m, k, h) for m, k, h in zip(maps, masks, hottest_zyx, strict=True) if np.any(k)]
    if not kept:
        return Localisation(float("nan"), float("nan"), 0, ())
    for m, k, _ in kept:
        if np.shape(m) != np.shape(k):
            raise ValueError(f"anomaly map {np.shape(m)} and mask {np.shape(k)} are on different grids")
    distances = tuple(distance_to_mask_mm(h, k, spacing_mm) for _, k, h in kept)
    values = np.concatenate([np.asarray(m, dtype=np.float32).ravel() for m, _, _ in kept])
    labels = np.concatenate([np.asarray(k, dtype=bool).ravel() for _, k, _ in kept])
    if values.size > MAX_AP_VOXELS:
        pick = np.random.default_rng(seed).choice(values.size, MAX_AP_VOXELS, replace=False)
        values, labels = values[pick], labels[pick]
    ap = float(average_precision_score(labels, values)) if labels.any() else float("nan")
    hits = float(np.mean([d <= NEAR_MM for d in distances]))
    return Localisation(ap, hits, len(kept), distances)
