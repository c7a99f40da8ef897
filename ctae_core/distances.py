"""Distances of scans from a set of reference scans in a feature space (HU histograms, latent
vectors, tissue shares, outlines): used by the outlier score's evidence and by the evaluation's
baselines alike, so neither imports the other."""

from __future__ import annotations

import numpy as np


def histogram_features(histograms: np.ndarray) -> np.ndarray:
    """HU histograms (N, B) of counts → (N, B) fractions of each scan's voxels."""
    h = np.asarray(histograms, dtype=np.float64)
    if h.ndim != 2:
        raise ValueError(f"histograms must have shape (N, bins), got {h.shape}")
    totals = h.sum(axis=1, keepdims=True)
    if (totals <= 0).any():
        raise ValueError("every HU histogram must hold at least one voxel; re-ingest empty scans")
    return h / totals


CONSTANT_TOLERANCE = 1e-9
"""A column whose standard deviation over the fit rows is below this share of its magnitude is
constant (the mean of identical floats can differ from them in the last bits)."""
RIDGE = 1e-3
"""Added to the covariance's diagonal (in units of the fit rows' own variance): a feature
constant over the fit rows (no metal in any of them) must still make a scan that departs from
it far, not invisible behind a singular covariance."""


def mahalanobis_scores(features: np.ndarray, fit_rows: np.ndarray) -> np.ndarray:
    """Squared Mahalanobis distance per row to the ``fit_rows`` distribution (Ledoit–Wolf
    shrunk covariance, so many collinear histogram bins stay invertible, plus ``RIDGE``)."""
    from sklearn.covariance import LedoitWolf

    x = standardised(features, fit_rows)
    fit = LedoitWolf().fit(x[fit_rows])
    covariance = fit.covariance_ + RIDGE * np.eye(x.shape[1])
    centred = x - fit.location_
    return np.einsum("ij,ij->i", centred, np.linalg.solve(covariance, centred.T).T)


def standardised(features: np.ndarray, fit_rows: np.ndarray) -> np.ndarray:
    """Impute NaN with the fit rows' median, centre and scale by the fit rows. A column that is
    constant over the fit rows (e.g. no metal in any training scan) keeps unit scale, so a scan
    that departs from that constant still stands out."""
    x = np.asarray(features, dtype=np.float64).copy()
    fit_rows = np.asarray(fit_rows, dtype=bool)
    if fit_rows.sum() < 2:
        raise ValueError(f"a baseline needs at least 2 scans to fit on, got {int(fit_rows.sum())}")
    medians = np.nanmedian(x[fit_rows], axis=0)
    medians = np.where(np.isfinite(medians), medians, 0.0)
    x = np.where(np.isfinite(x), x, medians)
    mean, std = x[fit_rows].mean(axis=0), x[fit_rows].std(axis=0)
    # a constant column's std is rounding error (~1e-15), not a scale to divide by
    constant = std <= CONSTANT_TOLERANCE * np.maximum(np.abs(mean), 1.0)
    return (x - mean) / np.where(constant, 1.0, std)


def reference_distance(features: np.ndarray, reference_rows: np.ndarray, *, folds: int = 5,
                       trim: float = 0.15, steps: int = 4) -> np.ndarray:
    """Squared Mahalanobis distance of every row from the reference rows, robust to outliers
    among them and never measured by a fit that saw the row itself.

    An uncurated archive holds outliers, and a group of them in the fit widens the covariance
    along their own direction until they look normal (masking). So the fit starts from the half
    of the reference nearest the coordinate-wise median (in MAD units), then refits a few times
    on the ``1 − trim`` share of the reference nearest the last fit (concentration steps, as in
    the minimum covariance determinant); every row is finally measured against a fit on the
    kept reference rows of the other ``folds`` interleaved folds (cross-fitting: a scan inside
    its own fit looks closer).
    """
    x = np.asarray(features, dtype=np.float64)
    reference_rows = np.asarray(reference_rows, dtype=bool)
    ref = x[reference_rows]
    centre = np.nanmedian(ref, axis=0)
    spread = np.nanmedian(np.abs(ref - centre), axis=0)
    spread = np.where(spread > 0, spread, np.nanstd(ref, axis=0))
    spread = np.where(spread > 0, spread, 1.0)
    first = np.nansum(((x - centre) / spread) ** 2, axis=1)
    core = reference_rows & (first <= np.quantile(first[reference_rows], 0.5))
    for _ in range(steps):
        distance = mahalanobis_scores(x, core)
        core = reference_rows & (distance <= np.quantile(distance[reference_rows], 1.0 - trim))
    fold = np.arange(len(x)) % folds
    out = np.empty(len(x))
    for f in range(folds):
        fit = core & (fold != f)
        if fit.sum() < 2:
            fit = core
        rows = fold == f
        out[rows] = mahalanobis_scores(x, fit)[rows]
    return out
