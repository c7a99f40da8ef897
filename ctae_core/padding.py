"""Pad or crop a scan to the model's fixed input size (thesis 3.2).

Training places the scan at a random position inside the padded box; evaluation centres it.
The pad value is *air* (HU −1024, the ingestion clip floor), normalised like every other
voxel — zero after normalisation would be the dataset's mean HU, i.e. soft tissue, not
background. Scans larger than the box are centre-cropped with a warning.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

logger = logging.getLogger(__name__)

AIR_HU = -1024.0
"""HU of the pad value: air, the lower clip of ingestion."""

Region = tuple[slice, slice, slice]


def normalised_air(mean_hu: float, std_hu: float) -> float:
    """The pad value after normalisation (eq. 3.1): (AIR_HU − μ) / σ."""
    return (AIR_HU - mean_hu) / std_hu


def centre_crop_slices(shape: Sequence[int], size: Sequence[int]) -> Region:
    """Slices that keep the centred ``size`` part of an array of ``shape`` (axes ≤ size untouched)."""
    out = []
    for n, m in zip(shape, size, strict=True):
        start = max(0, (n - m) // 2)
        out.append(slice(start, start + min(n, m)))
    return tuple(out)  # type: ignore[return-value]


def crop_to_fit(array: np.ndarray, size: Sequence[int], name: str = "scan") -> tuple[np.ndarray, Region]:
    """Centre-crop ``array`` (Z, Y, X) to at most ``size``; warns when it cuts anything.

    Returns:
        The (possibly) cropped array and the slices of ``array`` it kept.
    """
    keep = centre_crop_slices(array.shape, size)
    if any(n > m for n, m in zip(array.shape, size, strict=True)):
        logger.warning(
            "%s of shape %s is larger than the pad size %s: centre-cropped to %s; "
            "raise --pad-size to keep the whole scan",
            name, tuple(array.shape), tuple(size), tuple(s.stop - s.start for s in keep),
        )
    return array[keep], keep


def placement(
    shape: Sequence[int], size: Sequence[int], rng: np.random.Generator | None = None
) -> Region:
    """Where a scan of ``shape`` (≤ ``size``) sits in the padded box.

    Args:
        shape: The scan's (Z, Y, X) voxels, each ≤ the matching ``size``.
        size: The padded (Z, Y, X) voxels.
        rng: Random placement when given (training); centred when ``None`` (evaluation).
    """
    out = []
    for n, m in zip(shape, size, strict=True):
        if n > m:
            raise ValueError(f"scan extent {n} exceeds pad size {m}; crop_to_fit() it first")
        start = (m - n) // 2 if rng is None else int(rng.integers(0, m - n + 1))
        out.append(slice(start, start + n))
    return tuple(out)  # type: ignore[return-value]


def pad_to_size(
    array: np.ndarray,
    size: Sequence[int],
    fill: float,
    rng: np.random.Generator | None = None,
    name: str = "scan",
) -> tuple[np.ndarray, Region, Region]:
    """Crop (centre, with a warning) then pad ``array`` (Z, Y, X) into a box of ``size``.

    Args:
        array: The scan, any dtype; the result has the same dtype.
        size: Padded (Z, Y, X) voxels.
        fill: Pad value in ``array``'s units (normalised air, or AIR_HU for HU arrays).
        rng: Random placement when given, deterministic (centred) when ``None``.
        name: Names the scan in the crop warning.

    Returns:
        ``(padded, region, kept)``: the padded array of shape ``size``; ``region``, the
        slices of ``padded`` that hold the scan; ``kept``, the slices of ``array`` that
        were kept (the whole array unless it was cropped).
    """
    cropped, kept = crop_to_fit(array, size, name)
    region = placement(cropped.shape, size, rng)
    padded = np.full(tuple(size), fill, dtype=array.dtype)
    padded[region] = cropped
    return padded, region, kept


def random_slab(length: int, slab: int, rng: np.random.Generator) -> tuple[slice, int | None]:
    """A random window of ``slab`` slices over a scan of ``length`` slices.

    The window may overhang either end of the scan by up to half a slab, so training also
    sees where a scan meets the air padding (as whole-scan evaluation does).

    Returns:
        ``(kept, z_offset)``: the slices of the scan inside the window, and where they start
        in the slab box; ``None`` when the whole scan fits (place it like any other axis).
    """
    if length <= slab:
        return slice(0, length), None
    start = int(rng.integers(-(slab // 2), length - slab + slab // 2 + 1))
    return slice(max(0, start), min(length, start + slab)), max(0, -start)


def round_up(size: Sequence[int], multiple: int) -> tuple[int, ...]:
    """Each extent rounded up to a multiple of ``multiple``."""
    return tuple(-(-int(n) // multiple) * multiple for n in size)
