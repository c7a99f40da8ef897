"""The scans a run trains on (``ScanItem``) and their train / val / test split (thesis 3.4):
seeded, independent of scan order. Torch-free, so the CLI can split before torch loads."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ScanItem:
    """A stored scan a run reads: its id, volume file, stored isotropic spacing and stored size
    (Z, Y, X) in voxels."""

    scan_id: str
    volume_path: str
    spacing_mm: float
    size_zyx: tuple[int, int, int]


MIN_SCANS_FOR_SPLIT = 3
SPLITS = ("train", "val", "test")


class SplitError(ValueError):
    """The scans cannot be split into non-empty train / val / test sets."""


class TooFewScansError(SplitError):
    """Fewer scans than a split needs: more must be ingested before training."""


def assign_splits(
    scan_ids: Sequence[str], seed: int, val_fraction: float = 0.1, test_fraction: float = 0.1
) -> dict[str, str]:
    """Seeded random 80/10/10 draw (thesis 3.4): ``{scan_id: "train" | "val" | "test"}``.

    The draw depends on the ids' order and the seed: the jobs pass the catalog's placement-free
    order (``data_catalog.scans.SCAN_ORDER``), so that one archive gets one split wherever it
    sits. A repeated id counts once. Val and test get at least one scan each.

    Raises:
        TooFewScansError: fewer than MIN_SCANS_FOR_SPLIT scans.
        SplitError: the fractions leave no training scan.
    """
    ids = list(dict.fromkeys(scan_ids))
    if len(ids) < MIN_SCANS_FOR_SPLIT:
        raise TooFewScansError(
            f"only {len(ids)} scan(s) in the catalog; a train/val/test split needs at least "
            f"{MIN_SCANS_FOR_SPLIT} — ingest more scans (`ctae ingest`) before training"
        )
    n_val = max(1, round(len(ids) * val_fraction))
    n_test = max(1, round(len(ids) * test_fraction))
    if len(ids) - n_val - n_test < 1:
        raise SplitError(f"val {val_fraction} + test {test_fraction} leave no training scans of {len(ids)}")
    order = np.random.default_rng(seed).permutation(len(ids))
    out = {}
    for rank, index in enumerate(order):
        out[ids[index]] = "val" if rank < n_val else "test" if rank < n_val + n_test else "train"
    return out
