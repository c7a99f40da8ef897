"""The viewer's review queue: flagged scans first by score, or the current selection."""

from __future__ import annotations

import pandas as pd

FLAGGED_FIRST = "flagged first by score"
SELECTION = "current selection"
SOURCES = (FLAGGED_FIRST, SELECTION)


def build_queue(scans: pd.DataFrame, source: str, selection: list[str]) -> list[str]:
    """Scan ids in review order.

    ``FLAGGED_FIRST``: scans above T by descending score, then the rest by descending score
    (unscored last). ``SELECTION``: the selected scans that exist, in selection order.
    """
    if source == SELECTION:
        known = set(scans["scan_id"])
        return [s for s in selection if s in known]
    flagged = scans["is_outlier"].fillna(False).astype(bool)
    ordered = pd.concat([scans[flagged], scans[~flagged]])  # scan table is sorted by score
    return ordered["scan_id"].tolist()


def queue_progress(scans: pd.DataFrame, queue: list[str], source: str) -> tuple[int, int]:
    """(reviewed, total): of the flagged scans for the flagged queue, else of the queue."""
    flagged = scans["is_outlier"].fillna(False).astype(bool)
    if source == FLAGGED_FIRST and flagged.any():
        relevant = scans[flagged]
    else:
        relevant = scans[scans["scan_id"].isin(queue)]
    return int(relevant["label"].notna().sum()), len(relevant)
