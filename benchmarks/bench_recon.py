"""Reconstruction and localisation quality of scored runs on a cohort with ground truth.

Per run: the RMS error over body voxels at the stored 3 mm of the validation split's inliers
(a 6 mm run's reconstruction is upsampled to 3 mm: what a reader sees), of the whole scans and
apart of their end slices and the slices between, and per base the truth file names (the
real-anatomy cohort's: the volume a scan was made from); the AUROC on local
anomalies (metal, devices, cables, valves, foreign objects) and on all anomalies, and the
Spearman ρ with pixel count among inliers, of the reconstruction's scores as measured (the
anomaly map's peak ``local_error_hu``, MSE_m) and as the outlier score takes them
(``local_error_z``, ``mse_m_z``: for the scan's size, among scans acquired alike); and the
localisation `ctae evaluate` reports (voxel AP, hottest region within 10 mm).

    python benchmarks/bench_recon.py --catalog C --truth COHORT/ground_truth.csv --run A [--run B]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ctae_core.real_cohort import LOCAL_TYPES  # noqa: E402  (after the path insert)

LOCAL = frozenset(LOCAL_TYPES)
"""The local anomaly types (the real-anatomy cohort's own list; the phantoms' local types are among
them)."""
RMS_TARGET_HU = 80.0
RECON_SCORES = ("local_error_hu", "local_error_z", "mse_m", "mse_m_z")
"""The reconstruction's own scores: measured, and as evidence (NaN where a run lacks them)."""


END_SLICES = 2
"""Slices at each end of a scan whose error is also reported apart: the U-Net reconstructs them
worst (stop 61: 105 HU against 63 between on a seed's validation inliers), and a short scan is
mostly ends."""


def body_rms_hu(volume_path: str, recon_path: str, stored_mm: float, run_mm: float) -> dict[str, float]:
    """RMS of stored − reconstruction over the body (HU > −990) at the stored spacing: of the
    whole scan (``scan``), of its ``END_SLICES`` slices at each end (``ends``) and of the slices
    between (``between``; NaN where a scan has none)."""
    from ctae_core.data import rescale_volume
    from ctae_core.io.volume_store import load_volume

    hu = np.asarray(load_volume(volume_path), dtype=np.float32)
    recon = np.asarray(load_volume(recon_path), dtype=np.float32)
    if abs(run_mm - stored_mm) > 1e-6:
        recon = rescale_volume(recon, run_mm, stored_mm)
    box = tuple(slice(0, min(a, b)) for a, b in zip(hu.shape, recon.shape, strict=True))
    hu, recon = hu[box], recon[box]
    body = hu > -990
    ends = np.zeros(hu.shape[0], bool)
    ends[:END_SLICES] = ends[-END_SLICES:] = True
    squared = (hu - recon) ** 2

    def rms(where: np.ndarray) -> float:
        return float(np.sqrt(np.mean(squared[where]))) if where.any() else float("nan")

    return {"scan": rms(body), "ends": rms(body & ends[:, None, None]),
            "between": rms(body & ~ends[:, None, None])}


def scored_scans(catalog: Path, truth_path: Path, run_id: str):
    """(the run's row, its scored scans with their recon and volume paths and the base the
    truth file names for each (the volume it was made from, or None), their truth labels,
    their mask files or None where the truth names no masks)."""
    from data_catalog import connect
    from data_catalog import scores as catalog_scores
    from jobs.evaluate import match_truth, read_truth, truth_column

    truth = read_truth(truth_path)
    with connect(catalog, read_only=True) as con:
        run = catalog_scores.read_run(con, run_id)
        inputs = catalog_scores.evaluation_inputs(con, run_id)
        stored = catalog_scores.read_scores(con, run_id)[["scan_id", "recon_path"]]
        paths = con.execute("SELECT scan_id, volume_path FROM scans").df()
    inputs = inputs.merge(stored, on="scan_id").merge(paths, on="scan_id")
    bases = truth_column(inputs, truth, "base")
    inputs["base"] = None if bases is None else bases.to_numpy(dtype=object)
    labels = match_truth(inputs, truth).to_numpy(dtype=object)
    masks = truth_column(inputs, truth, "mask_path")
    return run, inputs, labels, masks


def run_rows(catalog: Path, truth_path: Path, run_id: str) -> list[dict]:
    """The benchmark rows of one scored run."""
    from scipy.stats import spearmanr
    from sklearn.metrics import roc_auc_score

    from jobs.localisation import localisation_counts

    run, inputs, labels, masks = scored_scans(catalog, truth_path, run_id)
    inlier = labels == "inlier"
    val = inlier & (inputs["split"].to_numpy() == "val") & inputs["recon_path"].notna().to_numpy()
    rms = [body_rms_hu(r.volume_path, r.recon_path, float(r.spacing_mm), float(run["spacing_mm"]))
           for r in inputs[val].itertuples()]
    rows = [{"figure": f"{run_id} body RMS error of {len(rms)} val inliers at 3 mm (median)",
             "value": float(np.median([r["scan"] for r in rms])), "unit": "HU", "target": RMS_TARGET_HU}]
    for part, where in (("ends", f"their {END_SLICES} end slices at each side"), ("between", "the slices between")):
        rows.append({"figure": f"{run_id} body RMS error of {len(rms)} val inliers, {where} (median)",
                     "value": float(np.nanmedian([r[part] for r in rms])), "unit": "HU"})
    bases = inputs["base"].to_numpy(dtype=object)[val]
    for base in sorted({b for b in bases if b}):
        scans = [r["scan"] for r, b in zip(rms, bases, strict=True) if b == base]
        rows.append({"figure": f"{run_id} body RMS error of the val inliers made from {base} "
                               f"({len(scans)}; {min(scans):.0f}-{max(scans):.0f} HU) (median)",
                     "value": float(np.median(scans)), "unit": "HU"})
    local = np.isin(labels, list(LOCAL))
    anomaly = (labels != None) & ~inlier  # noqa: E711  (None: no truth row)
    for score in RECON_SCORES:
        values = inputs[score].to_numpy(dtype=np.float64, na_value=np.nan)
        for name, positives, target in (("local types", local, 0.95), ("all anomalies", anomaly, 0.85)):
            keep = (inlier | positives) & np.isfinite(values)
            if positives[keep].any() and inlier[keep].any():
                rows.append({"figure": f"{run_id} {score} AUROC on {name} ({int(positives[keep].sum())})",
                             "value": float(roc_auc_score(positives[keep], values[keep])),
                             "unit": "AUROC", "target": target})
        ok = inlier & np.isfinite(values)
        if ok.sum() < 3:
            continue
        rho = spearmanr(values[ok], inputs["pixel_count"].to_numpy(dtype=np.float64)[ok]).statistic
        rows.append({"figure": f"{run_id} {score} Spearman rho with pixel count (inliers)",
                     "value": float(rho), "unit": "rho", "target": "|rho| < 0.1"})
    located = localisation_counts(inputs, masks, truth_path.parent, run)
    if located.get("localisation_scans"):
        n = located["localisation_scans"]
        rows.append({"figure": f"{run_id} voxel AP ({n} scans with a mask)", "value": located["voxel_ap"],
                     "unit": "AP"})
        rows.append({"figure": f"{run_id} hottest region within 10 mm ({n} scans)",
                     "value": located["hottest_within_10mm"], "unit": "share", "target": 0.85})
    return [{"benchmark": "recon", "baseline": None, "ratio": None, "target": None, **r} for r in rows]


def main(rows_of: Callable[[Path, Path, str], list[dict]], description: str) -> None:
    """Print ``rows_of(catalog, truth, run)`` as JSON lines for every ``--run`` of the command line."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--catalog", type=Path, required=True)
    parser.add_argument("--truth", type=Path, required=True)
    parser.add_argument("--run", action="append", required=True, help="a scored run (repeatable)")
    args = parser.parse_args()
    for run_id in args.run:
        for row in rows_of(args.catalog, args.truth, run_id):
            print(json.dumps(row))


if __name__ == "__main__":
    main(run_rows, __doc__.splitlines()[0])
