"""Reconstruction errors of one scan: MSE (eq. 3.3), MSE over the scan's region, MSE_m over the
body mask (thesis 3.5), and the facts the viewer shows (where the largest error sits, how much
of the body is badly reconstructed).

All errors are in the model's normalised units (eq. 3.1: ``x = (HU - mean) / std``), exactly as
the thesis reports them; error *volumes* for the viewer are converted back to HU.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ctae_core.errors import EmptyMaskError
from ctae_core.stats import BODY_HU

HU_INT16_MIN, HU_INT16_MAX = -1024, 32767

Region = tuple[slice, slice, slice]


@dataclass(frozen=True)
class ScanScore:
    """The reconstruction errors and error facts of one scan.

    Attributes:
        mse: Mean squared error over the whole padded input (eq. 3.3), normalised units².
        mse_region: The same over the scan's own region, before padding.
        mse_m: The same over body-mask voxels only (HU > -990), the thesis's outlier score.
        max_error_zyx: Voxel index (Z, Y, X) of the largest |error| inside the body mask, in the
            unpadded scan at the run's spacing.
        error_fraction: Fraction of body-mask voxels whose |error| exceeds the error level.
        body_voxels: Voxels in the body mask.
    """

    mse: float
    mse_region: float
    mse_m: float
    max_error_zyx: tuple[int, int, int]
    error_fraction: float
    body_voxels: int


def body_mask(hu: np.ndarray, *, body_hu: float = BODY_HU) -> np.ndarray:
    """Boolean mask of body voxels: HU strictly above ``body_hu`` (default -990)."""
    return np.asarray(hu) > body_hu


def mse_per_sample(x: np.ndarray, recon: np.ndarray) -> np.ndarray:
    """Eq. 3.3 for each sample of a batch: mean over all voxels of (x - x̃)².

    Args:
        x: Inputs of shape (B, ...) in normalised units.
        recon: Reconstructions of the same shape.

    Returns:
        float64 array of shape (B,).
    """
    _check_same_shape(x, recon)
    diff = np.asarray(x, dtype=np.float64) - np.asarray(recon, dtype=np.float64)
    return (diff * diff).reshape(diff.shape[0], -1).mean(axis=1)


def score_scan(
    x: np.ndarray,
    recon: np.ndarray,
    region: Region,
    hu: np.ndarray,
    *,
    norm_std_hu: float,
    error_level_hu: float = 200.0,
    body_hu: float = BODY_HU,
) -> ScanScore:
    """Score one reconstructed scan.

    Args:
        x: Normalised, padded model input of shape (Z, Y, X).
        recon: The model's reconstruction, same shape as ``x``.
        region: Slices of ``x`` where the scan sits (the rest is padding).
        hu: The scan in HU at the run's spacing, shape of ``x[region]`` (defines the body mask).
        norm_std_hu: σ of eq. 3.1 in HU; turns a normalised error into HU.
        error_level_hu: |error| in HU above which a body voxel counts in ``error_fraction``.
        body_hu: Body-mask cut-off in HU.

    Raises:
        ValueError: shapes disagree, or ``norm_std_hu`` is not positive.
        EmptyMaskError: the scan has no voxel above ``body_hu`` (only air), so MSE_m is undefined.
    """
    _check_same_shape(x, recon)
    if not norm_std_hu > 0:
        raise ValueError(f"norm_std_hu must be > 0 HU, got {norm_std_hu}; check the run's norm_std")
    sq = np.square(np.asarray(x, dtype=np.float32) - np.asarray(recon, dtype=np.float32))
    sq_region = sq[region]
    if sq_region.shape != np.shape(hu):
        raise ValueError(
            f"region {tuple(sq_region.shape)} and hu {np.shape(hu)} differ in shape; "
            "pass the PreparedInput's own region and hu"
        )
    mask = body_mask(hu, body_hu=body_hu)
    n_body = int(mask.sum())
    if n_body == 0:
        raise EmptyMaskError(
            f"no voxel above {body_hu} HU (max {float(np.max(hu)):.0f} HU): the scan holds only "
            "air or is not in HU; MSE_m is undefined — check the source series"
        )
    sq_body = np.where(mask, sq_region, -1.0)
    max_index = np.unravel_index(int(np.argmax(sq_body)), sq_body.shape)
    level = (error_level_hu / norm_std_hu) ** 2
    return ScanScore(
        mse=float(sq.mean(dtype=np.float64)),
        mse_region=float(sq_region.mean(dtype=np.float64)),
        mse_m=float(sq_region[mask].mean(dtype=np.float64)),
        max_error_zyx=tuple(int(i) for i in max_index),  # type: ignore[arg-type]
        error_fraction=float((sq_region[mask] > level).sum() / n_body),
        body_voxels=n_body,
    )


def recon_hu(recon_region: np.ndarray, *, norm_mean_hu: float, norm_std_hu: float) -> np.ndarray:
    """Reconstruction back in HU (inverse of eq. 3.1), rounded to int16 and clipped at -1024."""
    hu = np.asarray(recon_region, dtype=np.float32) * norm_std_hu + norm_mean_hu
    return _to_int16(hu)


def abs_error_hu(
    x_region: np.ndarray, recon_region: np.ndarray, *, norm_std_hu: float
) -> np.ndarray:
    """|input − reconstruction| in HU, int16, same shape as the region."""
    _check_same_shape(x_region, recon_region)
    err = np.abs(np.asarray(x_region, np.float32) - np.asarray(recon_region, np.float32))
    return _to_int16(err * norm_std_hu)


def _to_int16(hu: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(hu), HU_INT16_MIN, HU_INT16_MAX).astype(np.int16)


def _check_same_shape(a: np.ndarray, b: np.ndarray) -> None:
    if np.shape(a) != np.shape(b):
        raise ValueError(
            f"input {np.shape(a)} and reconstruction {np.shape(b)} must have the same shape; "
            "the model must return a volume of its input's size"
        )
