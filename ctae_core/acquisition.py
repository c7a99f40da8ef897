"""How a scan was acquired, measured on its stored HU volume: image noise and the body's
outline in the field of view. Recorded per scan at ingest (``scans`` table) and used as
evidence by the run's outlier score (ctae_core/outlier_score.py).

Why: three of the outlier kinds a dataset holds change no voxel in a way an autoencoder finds
hard to reproduce, so MSE_m cannot see them — heavy noise (averaged away by the model's
coarse input), arms beside the body and a body cut by the field of view (normal anatomy in an
unusual place). Their signs are simple to measure directly:

- ``noise_hu``: the standard deviation of image noise, estimated robustly from differences of
  neighbouring soft-tissue voxels (1.4826 · MAD / √2), so edges and anatomy barely count;
- ``body_profile``: the body's outline as its extent from the centroid in
  ``PROFILE_DIRECTIONS`` directions, divided by the mean extent (so body size cancels) and
  averaged over axial slices — arms at the sides, a cut edge or an odd shape change it;
- ``body_edge_mm``: how much of the image border the body lies on, per slice (mm): 0 for a
  body wholly inside the field of view.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ctae_core.thresholds import MAD_TO_STD

PROFILE_DIRECTIONS = 32
"""Directions of the body outline profile (every 11.25°)."""
BODY_HU = -500.0
"""Body (and couch) voxels for the outline: above this; air and lung-free air below."""
SOFT_TISSUE_HU = (-150.0, 150.0)
"""Voxel pairs inside this range give the noise estimate (fat, muscle, organs)."""
OPENING_ITERATIONS = 2
"""Binary opening that detaches the couch and thin lines from the body before the largest
component is taken (two voxels: 6 mm at ctae's 3 mm spacing)."""
MAX_SLICES = 48
"""Axial slices measured for the outline, evenly spaced; enough for a stable mean."""
MIN_NOISE_PAIRS = 100


@dataclass(frozen=True)
class AcquisitionFeatures:
    """Noise and body outline of one scan; NaN (profile: empty) where nothing was measurable,
    e.g. no soft tissue or no body in any slice (an intensity offset can cause both)."""

    noise_hu: float
    body_edge_mm: float
    body_profile: tuple[float, ...]


def acquisition_features(hu: np.ndarray, spacing_mm: float) -> AcquisitionFeatures:
    """Noise and body outline of a (Z, Y, X) HU volume with isotropic ``spacing_mm``.

    Raises:
        ValueError: the volume is not 3-D or is empty.
    """
    if hu.ndim != 3 or hu.size == 0:
        raise ValueError(f"hu must be a non-empty (Z, Y, X) volume, got shape {hu.shape}")
    profiles, edges = [], []
    for k in np.unique(np.linspace(0, hu.shape[0] - 1, MAX_SLICES).round().astype(int)):
        body = _body(hu[k])
        if body is None:
            continue
        profiles.append(_profile(body))
        edges.append(_border_voxels(body) * spacing_mm)
    if not profiles:
        return AcquisitionFeatures(noise_estimate(hu), float("nan"), ())
    return AcquisitionFeatures(
        noise_hu=noise_estimate(hu),
        body_edge_mm=float(np.mean(edges)),
        body_profile=tuple(float(v) for v in np.mean(profiles, axis=0)),
    )


def noise_estimate(hu: np.ndarray) -> float:
    """Robust noise SD (HU) from in-row differences of soft-tissue voxel pairs; NaN when fewer
    than ``MIN_NOISE_PAIRS`` pairs exist."""
    low, high = SOFT_TISSUE_HU
    left, right = hu[..., :-1], hu[..., 1:]
    pairs = (left > low) & (left < high) & (right > low) & (right < high)
    if np.count_nonzero(pairs) < MIN_NOISE_PAIRS:
        return float("nan")
    diff = right[pairs].astype(np.float32) - left[pairs].astype(np.float32)
    mad = np.median(np.abs(diff - np.median(diff)))
    return float(MAD_TO_STD * mad / np.sqrt(2.0))


def _body(plane: np.ndarray) -> np.ndarray | None:
    """The largest body region of an axial plane, holes filled; None if the plane has none."""
    cross = ndimage.generate_binary_structure(2, 1)
    mask = ndimage.binary_opening(plane > BODY_HU, structure=cross, iterations=OPENING_ITERATIONS)
    labels, n = ndimage.label(mask)
    if n == 0:
        return None
    sizes = ndimage.sum_labels(mask, labels, index=np.arange(1, n + 1))
    return ndimage.binary_fill_holes(labels == 1 + int(np.argmax(sizes)))


def _profile(body: np.ndarray) -> np.ndarray:
    """Extent of the region from its centroid per direction, divided by the mean extent."""
    y, x = np.nonzero(body)
    dy, dx = y - y.mean(), x - x.mean()
    direction = np.floor((np.arctan2(dy, dx) + np.pi) / (2 * np.pi) * PROFILE_DIRECTIONS)
    direction = direction.astype(int) % PROFILE_DIRECTIONS
    extent = np.zeros(PROFILE_DIRECTIONS)
    np.maximum.at(extent, direction, np.hypot(dy, dx))
    return extent / max(float(extent.mean()), 1e-9)


def _border_voxels(body: np.ndarray) -> int:
    """Body voxels on the plane's outermost rows and columns."""
    ring = np.ones_like(body)
    ring[1:-1, 1:-1] = False
    return int(np.count_nonzero(body & ring))


__all__ = ["AcquisitionFeatures", "PROFILE_DIRECTIONS", "acquisition_features", "noise_estimate"]
