"""What a trained model's |error| is on normal anatomy, by the voxel's HU and the strength of the
edge it sits on, and a scan's |error| in excess of it.

Every real scan has high-contrast edges (bone, bowel gas, skin, the couch) that a denoising
model reproduces only approximately, so the raw |error| is largest there in inliers and
outliers alike. Fitted once after training on the training scans' voxels, this table says how
large the error usually is in each context (HU bin × gradient bin); the anomaly map is then the
|error| above that usual level, so that what every scan has stops ranking first.

Robust to an uncurated training split: each context's level is the median over scans of each
scan's own high quantile, so a few scans with metal in the training split do not teach the
table that metal is normal.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

HU_EDGES = (-1024.0, -900.0, -700.0, -400.0, -150.0, -50.0, 30.0, 100.0, 200.0, 350.0, 600.0,
            1000.0, 1600.0, 2400.0)
"""HU bin edges (lung, fat, soft tissue, enhanced blood, bone, dense bone, metal); values outside
fall in the first or last bin."""
GRADIENT_EDGES = (0.0, 5.0, 10.0, 20.0, 40.0, 70.0, 110.0, 170.0, 260.0)
"""Bin edges of the strongest HU gradient in the voxel's 3³ neighbourhood, HU/mm."""
QUANTILE = 0.99
"""Each scan's level in a context: this quantile of its |error| there."""
MIN_VOXELS = 50
"""A scan speaks for a context only with at least this many body voxels in it."""
MIN_SCANS = 3
MIN_SHARE = 0.2
"""A context is fitted only when ``MIN_SCANS`` and this share of the scans speak for it (others
borrow, see ``fit``): metal in a few outlier scans of the training split is not normal."""
SAMPLE_VOXELS = 400_000
"""Body voxels drawn per scan at most (seeded) when fitting."""


def edge_strength(hu: np.ndarray, spacing_mm: float) -> np.ndarray:
    """The strongest HU gradient magnitude (HU/mm) in each voxel's 3³ neighbourhood, float32:
    a voxel beside an edge is in the edge's context, since the model's error smears across it."""
    from scipy.ndimage import maximum_filter

    grads = np.gradient(np.asarray(hu, dtype=np.float32), spacing_mm)
    magnitude = np.sqrt(sum(g * g for g in grads)).astype(np.float32)
    return maximum_filter(magnitude, size=3, mode="nearest")


def _bins(hu: np.ndarray, edge: np.ndarray) -> np.ndarray:
    """Flat context index of each voxel (HU bin × gradient bin)."""
    h = np.clip(np.searchsorted(HU_EDGES, hu, side="right") - 1, 0, len(HU_EDGES) - 1)
    g = np.clip(np.searchsorted(GRADIENT_EDGES, edge, side="right") - 1, 0, len(GRADIENT_EDGES) - 1)
    return h * len(GRADIENT_EDGES) + g


@dataclass(frozen=True)
class NormalError:
    """The usual |error| (HU) of a model on normal anatomy per context.

    Attributes:
        level_hu: (len(HU_EDGES), len(GRADIENT_EDGES)) table: the median over training scans of
            each scan's ``QUANTILE`` of |error| in that HU × edge-strength context.
        n_scans: Training scans the table was fitted on.
    """

    level_hu: tuple[tuple[float, ...], ...]
    n_scans: int

    def level(self, hu: np.ndarray, edge: np.ndarray) -> np.ndarray:
        """The usual |error| (HU) of each voxel's context, float32, shaped like ``hu``."""
        table = np.asarray(self.level_hu, dtype=np.float32).ravel()
        return table[_bins(np.asarray(hu), np.asarray(edge))]

    def excess(self, abs_error_hu: np.ndarray, hu: np.ndarray, spacing_mm: float) -> np.ndarray:
        """|error| above its context's usual level (HU, ≥ 0), float32."""
        level = self.level(hu, edge_strength(hu, spacing_mm))
        return np.maximum(np.asarray(abs_error_hu, dtype=np.float32) - level, 0).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        """Plain lists and numbers (checkpoints load with ``weights_only``)."""
        return {"level_hu": [list(r) for r in self.level_hu], "n_scans": self.n_scans,
                "hu_edges": list(HU_EDGES), "gradient_edges": list(GRADIENT_EDGES), "quantile": QUANTILE}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NormalError:
        """Rebuild from ``to_dict()``; a table for other bins is refused."""
        if (tuple(data.get("hu_edges", ())) != HU_EDGES
                or tuple(data.get("gradient_edges", ())) != GRADIENT_EDGES):
            raise ValueError("the stored normal-error table has other bins than this ctae uses; "
                             "re-fit it with `ctae train --run RUN --resume`")
        return cls(tuple(tuple(float(v) for v in r) for r in data["level_hu"]), int(data["n_scans"]))


def scan_levels(abs_error_hu: np.ndarray, hu: np.ndarray, body: np.ndarray, spacing_mm: float,
                seed: int = 0) -> np.ndarray:
    """One scan's ``QUANTILE`` of |error| per context (NaN where it has < ``MIN_VOXELS``), flat."""
    edge = edge_strength(hu, spacing_mm)[body]
    err = np.asarray(abs_error_hu, dtype=np.float32)[body]
    hu_b = np.asarray(hu, dtype=np.float32)[body]
    if err.size > SAMPLE_VOXELS:
        pick = np.random.default_rng(seed).choice(err.size, SAMPLE_VOXELS, replace=False)
        err, hu_b, edge = err[pick], hu_b[pick], edge[pick]
    index = _bins(hu_b, edge)
    out = np.full(len(HU_EDGES) * len(GRADIENT_EDGES), np.nan, dtype=np.float64)
    order = np.argsort(index, kind="stable")
    index, err = index[order], err[order]
    starts = np.searchsorted(index, np.arange(out.size))
    ends = np.searchsorted(index, np.arange(out.size), side="right")
    for b, (s, e) in enumerate(zip(starts, ends, strict=True)):
        if e - s >= MIN_VOXELS:
            out[b] = float(np.quantile(err[s:e], QUANTILE))
    return out


def fit(levels: Iterable[np.ndarray]) -> NormalError:
    """The table from training scans' ``scan_levels``: the median over scans per context.

    A context too few scans speak for (metal-range HU is rare in inliers) borrows the level of
    the nearest fitted context below it in HU at the same edge strength, so rare bright voxels
    are judged against bone, not against a few outlier scans' metal.
    """
    levels = list(levels)
    if not levels:
        raise ValueError("no training scans to fit the normal error on")
    stack = np.stack(levels)
    needed = min(stack.shape[0], max(MIN_SCANS, int(np.ceil(MIN_SHARE * stack.shape[0]))))
    enough = np.sum(np.isfinite(stack), axis=0) >= needed
    median = np.full(stack.shape[1], np.nan)
    median[enough] = np.nanmedian(stack[:, enough], axis=0)
    table = median.reshape(len(HU_EDGES), len(GRADIENT_EDGES))
    if not np.isfinite(table).any():
        raise ValueError(f"no context has {MIN_VOXELS} body voxels in {needed} of the {stack.shape[0]} "
                         "scans; are the training scans empty (all air)?")
    _fill(table)  # borrow along HU at the same edge strength
    _fill(table.T)  # a strength no scan has: from the nearest weaker, else stronger, edges
    return NormalError(tuple(tuple(float(v) for v in r) for r in table), int(stack.shape[0]))


def _fill(table: np.ndarray) -> None:
    """In place, per column: an unfitted entry takes the nearest fitted one above it in the
    column (lower index), else below it."""
    for col in table.T:
        for i in range(1, len(col)):
            if not np.isfinite(col[i]):
                col[i] = col[i - 1]
        for i in range(len(col) - 2, -1, -1):
            if not np.isfinite(col[i]):
                col[i] = col[i + 1]
