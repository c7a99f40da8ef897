"""What the acquisition grouping does to the outlier score of a scored run, recomputed from
the run's stored evidence inputs (``data_catalog.scores.evidence_inputs``: the same model,
MSE_m, latents and measurements; no training): AUROC, precision and recall at T, the share of
inliers flagged, ρ with pixel count among inliers, and per kind of evidence the share of
inliers past the nominal 10 / 5 / 1 / 0.1 % (a calibrated kind stays near them).

    .venv/bin/python benchmarks/detection_ablation.py --catalog dev/catalog.duckdb --run dev \
        --truth dev/cohort/ground_truth.csv

README "Detection quality on real anatomy" was measured with it (development seed 1 only).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy.stats import norm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    """Print one line per grouping and the per-kind false-alarm shares of the product's."""
    from ctae_core.evaluation import ranking_metrics, spearman
    from ctae_core.outlier_score import EVIDENCE, acquisition_groups, outlier_evidence
    from ctae_core.thresholds import ThresholdRule
    from data_catalog import connect
    from data_catalog import scores as catalog_scores
    from jobs.evaluate import match_truth, read_truth
    from jobs.runtime import stack_lists
    from jobs.score_evidence import acquisition_inputs

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalog", type=Path, required=True)
    parser.add_argument("--run", required=True)
    parser.add_argument("--truth", type=Path, required=True)
    args = parser.parse_args()
    with connect(args.catalog, read_only=True) as con:
        inputs = catalog_scores.evidence_inputs(con, args.run)
        scans = catalog_scores.evaluation_inputs(con, args.run).set_index("scan_id")
    inputs = inputs.set_index("scan_id").loc[scans.index].reset_index()
    labels = match_truth(scans.reset_index(), read_truth(args.truth)).to_numpy()
    outlier = labels != "inlier"
    pixels = inputs["pixel_count"].to_numpy(dtype=np.float64)
    facts = [inputs[c].to_numpy() for c in ("manufacturer", "kernel", "model")]
    t = ThresholdRule("pvalue").threshold([0.0, 1.0])
    print(f"{len(labels)} scans, {outlier.sum()} anomalies; T = {t:.2f}")
    for name, groups in (("every scan one reference", None),
                         ("groups: manufacturer + kernel", acquisition_groups(*facts[:2])),
                         ("groups: + scanner model (the build)", acquisition_groups(*facts))):
        ev = outlier_evidence(
            inputs["mse_m"].to_numpy(dtype=np.float64, na_value=np.nan), pixels,
            stack_lists(inputs["latent"]), stack_lists(inputs["hu_histogram"]),
            np.ones(len(inputs), dtype=bool), acquisition_inputs(inputs), groups)
        score, flagged = ev.outlier_score, ev.outlier_score > t
        auroc, ap = ranking_metrics(outlier, score)
        print(f"{name:38s} AUROC {auroc:.3f} AP {ap:.2f} flagged {flagged.sum():3d} "
              f"P {(flagged & outlier).sum() / max(flagged.sum(), 1):.2f} "
              f"R {(flagged & outlier).sum() / outlier.sum():.2f} "
              f"inliers flagged {(flagged & ~outlier).sum() / (~outlier).sum():.1%} "
              f"rho {spearman(score[~outlier], pixels[~outlier]):+.2f}")
    print("share of inliers past nominal 10 / 5 / 1 / 0.1 % (the build):")
    for kind in EVIDENCE:
        z = getattr(ev, kind)[~outlier]
        z = z[np.isfinite(z)]
        shares = " / ".join(f"{np.mean(z > norm.isf(p)):.1%}" for p in (0.1, 0.05, 0.01, 0.001))
        print(f"  {kind:12s} {shares}  (n {z.size})")


if __name__ == "__main__":
    main()
