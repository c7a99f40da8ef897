"""The session's agreement table: Cohen's kappa per reviewer pair, Fleiss' kappa over all reads,
for the verdict and for each cause tag used, with 95 % bootstrap intervals."""

from __future__ import annotations

from itertools import combinations

import pandas as pd

from ctae_core.agreement import Kappa, cohen_with_interval, fleiss_with_interval
from data_catalog.review import CAUSE_TAGS, VERDICTS

COLUMNS = ["readers", "statistic", "measure", "scans", "kappa", "ci_low", "ci_high"]


def _measures(reads: pd.DataFrame) -> dict[str, pd.Series]:
    used = {tag for causes in reads["causes"] for tag in causes}
    measures = {"verdict": reads["verdict"]}
    for tag in CAUSE_TAGS:
        if tag in used:
            measures[f"cause: {tag}"] = reads["causes"].map(lambda c, t=tag: t in c)
    return measures


def _row(readers: str, statistic: str, measure: str, k: Kappa) -> dict:
    return dict(zip(COLUMNS, [readers, statistic, measure, k.n, k.kappa, k.low, k.high], strict=True))


def agreement_table(reads: pd.DataFrame) -> pd.DataFrame:
    """Kappas of the reads (newest per scan and reviewer: scan_id, reviewer, verdict, causes)."""
    if reads.empty:
        return pd.DataFrame(columns=COLUMNS)
    rows = []
    measures = _measures(reads)
    for r1, r2 in combinations(sorted(reads["reviewer"].unique()), 2):
        for name, values in measures.items():
            wide = (
                pd.DataFrame({"scan": reads["scan_id"], "who": reads["reviewer"], "v": values})
                .pivot(index="scan", columns="who", values="v")
            )
            both = wide[[r1, r2]].dropna()
            if len(both):
                kappa = cohen_with_interval(both[r1].to_numpy(), both[r2].to_numpy())
                rows.append(_row(f"{r1} × {r2}", "Cohen", name, kappa))
    n_reads = reads.groupby("scan_id")["reviewer"].transform("size")
    multi = n_reads >= 2
    if multi.any():
        # Fleiss needs the same number of reads per scan: the most common count of 2 or more
        n = int(n_reads[multi].mode().iloc[0])
        keep = n_reads == n
        for name, values in measures.items():
            categories = list(VERDICTS) if name == "verdict" else [False, True]
            table = pd.crosstab(reads.loc[keep, "scan_id"], values[keep]).reindex(
                columns=categories, fill_value=0
            )
            kappa = fleiss_with_interval(table.to_numpy(dtype=float))
            rows.append(_row(f"all ({n} reads per scan)", "Fleiss", name, kappa))
    table = pd.DataFrame(rows, columns=COLUMNS)
    table[["kappa", "ci_low", "ci_high"]] = table[["kappa", "ci_low", "ci_high"]].astype(float)
    return table


def disagreeing_scans(reads: pd.DataFrame) -> list[str]:
    """Scans whose reviewers' newest verdicts differ (the adjudication queue)."""
    if reads.empty:
        return []
    spread = reads.groupby("scan_id")["verdict"].nunique()
    return sorted(spread[spread > 1].index)


