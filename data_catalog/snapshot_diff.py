"""What changed between two export snapshots, scan by scan, and why."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from data_catalog.snapshots import Snapshot

DIFF_COLUMNS = ["scan_id", "change", "reasons", "label_a", "label_b", "flag_a", "flag_b",
                "score_a", "score_b"]


def _differs(a: pd.Series, b: pd.Series) -> pd.Series:
    a, b = a.astype(object), b.astype(object)
    both_na = a.isna() & b.isna()
    return ~both_na & (a.isna() | b.isna() | (a.where(a.notna(), "") != b.where(b.notna(), "")))


def _reasons(row: pd.Series, filter_changed: bool) -> str:
    why = []
    if pd.isna(row["included_a"]):
        why.append("new scan")
    elif pd.isna(row["included_b"]):
        why.append("scan gone from the run")
    else:
        if row["flag_a"] is not True and row["flag_b"] is True:
            why.append("newly flagged")
        elif row["flag_a"] is True and row["flag_b"] is not True:
            why.append("no longer flagged")
        if row["label_changed"]:
            why.append(f"relabelled {row['label_a'] or 'unlabeled'} → {row['label_b'] or 'unlabeled'}")
        if row["adjudication_changed"]:
            why.append(f"adjudicated {row['adjudication_b'] or 'none'}")
        if row["score_changed"] and row["flag_a"] == row["flag_b"]:
            why.append("rescored")
        if row["split_changed"]:
            why.append(f"split {row['split_a']} → {row['split_b']}")
    if not why and filter_changed:
        why.append("filter changed")
    return "; ".join(why) or "unchanged state"


def diff_snapshots(a: Snapshot, b: Snapshot) -> tuple[dict[str, Any], pd.DataFrame]:
    """(summary, table) of what changed from snapshot ``a`` to ``b``.

    The table has one row per scan that was added to the list, removed from it, or kept but
    relabelled / re-flagged / adjudicated, with the reasons in words; the summary names the
    manifest fields that differ (run, model, threshold, filter) and counts each change.
    """
    keep = ["scan_id", "included", "split", "score", "is_outlier", "label", "adjudication"]
    both = a.rows[keep].merge(b.rows[keep], on="scan_id", how="outer", suffixes=("_a", "_b"))
    both = both.rename(columns={"is_outlier_a": "flag_a", "is_outlier_b": "flag_b"})
    for side in ("a", "b"):
        both[f"flag_{side}"] = both[f"flag_{side}"].astype(object).where(both[f"flag_{side}"].notna(), None)
        both[f"included_{side}"] = both[f"included_{side}"].astype(object)
    both["label_changed"] = _differs(both["label_a"], both["label_b"])
    both["adjudication_changed"] = _differs(both["adjudication_a"], both["adjudication_b"])
    both["split_changed"] = _differs(both["split_a"], both["split_b"])
    sa, sb = both["score_a"].astype(float), both["score_b"].astype(float)
    both["score_changed"] = ~np.isclose(sa, sb, rtol=1e-9, atol=0.0, equal_nan=True)
    in_a = both["included_a"].fillna(False).astype(bool)
    in_b = both["included_b"].fillna(False).astype(bool)
    changed_state = both["label_changed"] | both["adjudication_changed"] | (
        both["flag_a"].astype(str) != both["flag_b"].astype(str))
    both["change"] = np.select(
        [in_b & ~in_a, in_a & ~in_b, in_a & in_b & changed_state],
        ["added", "removed", "changed"], default="",
    )
    filter_changed = a.manifest["filter"] != b.manifest["filter"]
    table = both[both["change"] != ""].copy()
    table["reasons"] = [_reasons(row, filter_changed) for _, row in table.iterrows()]
    table = table.sort_values(["change", "scan_id"]).reset_index(drop=True)[DIFF_COLUMNS]
    fields = ("run_id", "filter", "model", "threshold", "format")
    summary = {
        "a": a.export_id,
        "b": b.export_id,
        "differs": [f for f in fields if a.manifest.get(f) != b.manifest.get(f)],
        "rows": (a.manifest["row_count"], b.manifest["row_count"]),
        "labels": (a.manifest["label_state"]["labels"], b.manifest["label_state"]["labels"]),
        **{k: int((table["change"] == k).sum()) for k in ("added", "removed", "changed")},
    }
    return summary, table
