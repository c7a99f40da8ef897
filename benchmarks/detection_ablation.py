"""What the acquisition grouping, the metal evidence, leaving MSE_m out, the size lines and the
dense-object evidence, the short-slab groups, the three strongest kinds counted together, the streaks through the body (compared with the planes 6 mm away since stop 27), the contrast evidence's enhanced range from 128 HU, the histogram evidence on the square roots of its fractions, the defect rate without the most broken series, the rings under the one-number null, the tissues measured from their acquisition group's centre and the streaks under t₆ (stop 29), the noise under t₆ (stop 30) and the metal amounts judged within their acquisition group (stop 31) do to the outlier score of a scored run, recomputed from the run's stored evidence inputs (``data_catalog.scores.evidence_inputs``:
the same model, MSE_m, latents and measurements; no training): AUROC, precision and recall at
T (the default p, over each variant's kinds), the share of inliers flagged, ρ with pixel count among inliers, the recall reachable with at
most 1 % of inliers flagged (``R@1%``: the best any threshold on this ranking could do), the
per-type AUROC of the local metal types, and per kind of evidence the share of inliers past the
nominal 10 / 5 / 1 / 0.1 % (a calibrated kind stays near them).

    .venv/bin/python benchmarks/detection_ablation.py --catalog dev/catalog.duckdb --run dev \
        --truth dev/cohort/ground_truth.csv

README "Detection quality on real anatomy" was measured with it (development seeds 1, 101 to 105;
held-out 109 / 110, 111 / 112, 113 / 114, 115 / 116 and 117 / 118 once each; stop 26: development
seeds 1, 101 to 105 made anew, held-out 119 to 132 once each; stop 27: development seeds 1, 101 to
105 and 119 to 132, held-out 133 to 142 once each; stop 29: development seeds 1, 101 to 105 and
119 to 126 made anew, held-out 143 to 152 once each; stop 30: 32 development seeds, held-out 161
to 172; stop 31: the same 32, held-out 173 to 178). The catalog must hold this build's measures
(`ctae score` after the v15 migration measures the streaks and rings anew: streaks only in planes
with both neighbours, rings only at radii reaching three quarters of the way round). A catalog
holds one streak and one ring measure, so every row scores this build's; a change of a measure is
measured by running the earlier build's ablation (stop 27's: commit 19e46ae) on the catalog
before its migration.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np
from scipy.stats import norm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
METAL_TYPES = ("ecg_electrodes", "heart_valve", "foreign_object", "external_cable")
DENSE_KINDS = ("skin_object_z", "inner_object_z")
LONG_KIND = "long_object_z"
ARTERIAL_HU = (256, 704)  # the contrast evidence's enhanced range until stop 25 (CCTA's blood)
STOP_29_ROWS = ("+ defect rate without the most broken", "+ rings under the one-number null",
                "+ tissues from their group's centre", "+ streaks under t6")
"""Stop 29's rows, one change each in this order."""
STOP_30_ROWS = ("+ noise under t6",)
"""Stop 30's row. Every row reads the stored noise, measured since v16 with a grouped
median: the stepped measure before it is not in the catalog any more."""
STOP_31_ROWS = ("+ metal amounts within groups (build)",)
"""Stop 31's row (the build): the hurdle's amounts among the positives of their own acquisition
group where it holds enough (``ctae_core.calibration.hurdle_z``); every earlier row pools them."""
BUILD_ROWS = (*STOP_29_ROWS, *STOP_30_ROWS, *STOP_31_ROWS)


def main() -> None:
    """Print one line per variant of the score and the per-kind false-alarm shares of the build's."""
    import ctae_core.outlier_score as score_module
    from ctae_core.calibration import DISTANCE_NULL_DF, NULL_DF
    from ctae_core.combined_evidence import combined_score
    from ctae_core.evaluation import ranking_metrics, spearman
    from ctae_core.outlier_score import (
        EVIDENCE,
        SCORED_EVIDENCE,
        SIZE_LINED_EVIDENCE,
        acquisition_groups,
        outlier_evidence,
        strongest_evidence,
    )
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
    acquisition = acquisition_inputs(inputs)
    measured = np.isfinite(acquisition.native_metal_mm3).sum()
    print(f"{len(labels)} scans, {outlier.sum()} anomalies; native metal measured on {measured}")
    no_metal = replace(acquisition, native_metal_mm3=None)
    # streaks are scored since v13 (through the body); the catalog holds only that measure, so
    # every earlier row leaves them out, as those builds did
    twelve = tuple(k for k in SCORED_EVIDENCE if k != "streak_z")
    nine = tuple(k for k in twelve if k not in (*DENSE_KINDS, LONG_KIND))
    eleven = tuple(k for k in twelve if k != LONG_KIND)
    previous = ("mse_m_z", *(k for k in nine if k != "metal_z"))
    groups = acquisition_groups(*facts)
    with_slabs = acquisition_groups(*facts, inputs["coverage_mm"].to_numpy(dtype=np.float64))
    strongest, together = strongest_evidence, combined_score
    variants = (  # name, groups, acquisition inputs, the kinds scored, the kinds with a size line,
        # how the kinds combine into the score
        ("every scan one reference", None, no_metal, previous, (), strongest),
        ("groups: manufacturer + kernel", acquisition_groups(*facts[:2]), no_metal, previous, (),
         strongest),
        ("groups: + scanner model", groups, no_metal, previous, (), strongest),
        ("+ metal evidence", groups, acquisition, (*previous, "metal_z"), (), strongest),
        ("+ MSE_m z not scored", groups, acquisition, nine, (), strongest),
        ("+ size lines", groups, acquisition, nine, SIZE_LINED_EVIDENCE, strongest),
        ("+ dense objects", groups, acquisition, eleven, SIZE_LINED_EVIDENCE, strongest),
        ("+ longest dense object", groups, acquisition, twelve, SIZE_LINED_EVIDENCE, strongest),
        ("+ short slabs apart (stop 24)", with_slabs, acquisition, twelve, SIZE_LINED_EVIDENCE,
         strongest),
        ("+ three strongest together", with_slabs, acquisition, twelve, SIZE_LINED_EVIDENCE,
         together),
        # from stop 25 on, every kind scored the same way; each row one change of how
        *((name, with_slabs, acquisition, SCORED_EVIDENCE, SIZE_LINED_EVIDENCE, together) for name in (
            "+ streaks through the body (stop 25)", "+ enhanced from 128 HU",
            "+ histogram on square roots (stop 26)", *BUILD_ROWS)),
    )
    built_enhanced, built_histogram = score_module.ENHANCED_HU, score_module._histogram_features

    def plain_fractions(counts: np.ndarray) -> np.ndarray:  # the histogram's until stop 25
        return built_histogram(counts) ** 2

    histogram_evidence = {  # the enhanced range and the histogram features from stop 26's rows;
        # every earlier row: CCTA's arterial range and plain fractions
        name: (built_enhanced, built_histogram)
        for name in ("+ histogram on square roots (stop 26)", *BUILD_ROWS)}
    histogram_evidence["+ enhanced from 128 HU"] = (built_enhanced, plain_fractions)
    built = (score_module.defect_z, score_module.RING_NULL_DF, score_module.GROUP_CENTRED_EVIDENCE,
             score_module.STREAK_NULL_DF, score_module.NOISE_NULL_DF, score_module.hurdle_z)
    pooled_amounts = partial(built[5], amount_by_group=False)
    for name, grouping, acq, kinds, size_lined, combine in variants:
        score_module.SIZE_LINED_EVIDENCE = size_lined
        score_module.ENHANCED_HU, score_module._histogram_features = histogram_evidence.get(
            name, (ARTERIAL_HU, plain_fractions))
        # stop 29's four rows, stop 30's and stop 31's, one change each (the last is the build);
        # every earlier row: the defect rate of all series, the distances' null for rings and
        # streaks, no tissue centring, the one-number null for noise, pooled metal amounts
        step = BUILD_ROWS.index(name) if name in BUILD_ROWS else -1
        score_module.defect_z = built[0] if step >= 0 else untrimmed_defect_z
        score_module.RING_NULL_DF = built[1] if step >= 1 else DISTANCE_NULL_DF
        score_module.GROUP_CENTRED_EVIDENCE = built[2] if step >= 2 else ()
        score_module.STREAK_NULL_DF = built[3] if step >= 3 else DISTANCE_NULL_DF
        score_module.NOISE_NULL_DF = built[4] if step >= 4 else NULL_DF
        score_module.hurdle_z = built[5] if step >= 5 else pooled_amounts
        ev = outlier_evidence(
            inputs["mse_m"].to_numpy(dtype=np.float64, na_value=np.nan), pixels,
            stack_lists(inputs["latent"]), stack_lists(inputs["hu_histogram"]),
            np.ones(len(inputs), dtype=bool), acq, grouping,
            local_error=inputs["local_error_hu"].to_numpy(dtype=np.float64, na_value=np.nan))
        t = ThresholdRule("pvalue", evidence=len(kinds)).threshold([0.0, 1.0])
        score = combine(np.stack([getattr(ev, kind) for kind in kinds]))
        flagged = score > t
        auroc, ap = ranking_metrics(outlier, score)
        at_one = np.sort(score[~outlier])[::-1][int(0.01 * (~outlier).sum())]
        per_type = " ".join(
            f"{kind[:5]} {ranking_metrics(outlier[(labels == kind) | ~outlier], score[(labels == kind) | ~outlier])[0]:.2f}"
            for kind in METAL_TYPES if (labels == kind).any())
        print(f"{name:36s} AUROC {auroc:.3f} AP {ap:.2f} T {t:.2f} flagged {flagged.sum():3d} "
              f"P {(flagged & outlier).sum() / max(flagged.sum(), 1):.2f} "
              f"R {(flagged & outlier).sum() / outlier.sum():.2f} "
              f"inliers flagged {(flagged & ~outlier).sum() / (~outlier).sum():.1%} "
              f"rho {spearman(score[~outlier], pixels[~outlier]):+.2f} "
              f"R@1% {(score[outlier] > at_one).mean():.2f} | {per_type}")
    print("share of inliers past nominal 10 / 5 / 1 / 0.1 % (the build):")
    for kind in EVIDENCE:
        z = getattr(ev, kind)[~outlier]
        z = z[np.isfinite(z)]
        shares = " / ".join(f"{np.mean(z > norm.isf(p)):.1%}" for p in (0.1, 0.05, 0.01, 0.001))
        print(f"  {kind:13s} {shares}  (n {z.size})")
    rules = [ThresholdRule("pvalue", p=p, evidence=len(SCORED_EVIDENCE)) for p in (0.1, 0.05, 0.01, 0.001)]
    shares = " / ".join(f"{np.mean(score[~outlier] > rule.threshold([0.0, 1.0])):.1%}" for rule in rules)
    print(f"  {'outlier score':13s} {shares}  (its T at each p; the highest inlier {np.nanmax(score[~outlier]):.2f})")


def untrimmed_defect_z(values: np.ndarray, reference_rows: np.ndarray) -> np.ndarray:
    """``ctae_core.outlier_score.defect_z`` until stop 29: the Poisson rate of every reference
    series' defects, the most broken ones included."""
    from ctae_core.outlier_score import defect_z_at_rate

    values = np.asarray(values, dtype=np.float64)
    ref = values[np.asarray(reference_rows, dtype=bool)]
    ref = ref[np.isfinite(ref)]
    return defect_z_at_rate(values, (ref.sum() + 0.5) / (ref.size + 1))


if __name__ == "__main__":
    main()
