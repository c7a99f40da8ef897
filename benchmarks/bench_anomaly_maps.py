"""Which anomaly map ranks and localises better: the raw |error| or the |error| in excess of the
model's usual error on normal anatomy in the same context (``ctae_core.error_norm``)?

Recomputed from a scored run's stored reconstructions (no model, no re-scoring): the table is
fitted on the run's training split as `ctae train` fits it (uncurated), then every scan's map
is built both ways. Per map: the local error's (map peak's) AUROC on local objects and on all
anomalies against inliers, its Spearman ρ with pixel count among inliers, the share of objects
whose hottest region lies within 10 mm, and the voxel-level AP.

    python benchmarks/bench_anomaly_maps.py --catalog C --truth COHORT/ground_truth.csv --run R
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_recon import LOCAL, main, scored_scans  # noqa: E402


def _scan_arrays(row) -> tuple[np.ndarray, np.ndarray]:
    """(stored HU, |stored − reconstruction| HU) on the stored grid, float32."""
    from ctae_core.io.volume_store import load_volume

    hu = np.asarray(load_volume(row.volume_path), dtype=np.float32)
    recon = np.asarray(load_volume(row.recon_path), dtype=np.float32)
    if hu.shape != recon.shape:
        raise ValueError(f"scan {row.scan_id}: stored {hu.shape} and reconstruction {recon.shape} differ; "
                         "the run must be at the stored spacing")
    return hu, np.abs(hu - recon)


def compare(catalog: Path, truth_path: Path, run_id: str) -> list[dict]:
    """The benchmark rows: each figure for the raw and the normalised map."""
    from scipy.stats import spearmanr
    from sklearn.metrics import roc_auc_score

    from ctae_core import error_norm
    from ctae_core.anomaly_map import anomaly_map, hottest_region
    from ctae_core.io.mask_files import mask_on_stored_grid
    from ctae_core.localisation import localise

    run, inputs, labels, masks = scored_scans(catalog, truth_path, run_id)
    keep = inputs["recon_path"].notna().to_numpy()
    inputs, labels = inputs[keep].reset_index(drop=True), labels[keep]
    masks = masks[keep].to_numpy(dtype=object) if masks is not None else np.full(len(inputs), None)
    spacing = float(run["spacing_mm"])

    levels = []
    for row in inputs[inputs["split"] == "train"].itertuples():
        hu, err = _scan_arrays(row)
        levels.append(error_norm.scan_levels(err, hu, hu > -990, spacing))
    normal = error_norm.fit(levels)

    peaks: dict[str, list[float]] = {"raw": [], "normalised": []}
    located: dict[str, tuple[list, list, list]] = {k: ([], [], []) for k in peaks}
    for row, mask_file in zip(inputs.itertuples(), masks, strict=True):
        hu, err = _scan_arrays(row)
        body = hu > -990
        maps = {"raw": anomaly_map(err, body, spacing),
                "normalised": anomaly_map(normal.excess(err, hu, spacing), body, spacing)}
        mask = (mask_on_stored_grid(truth_path.parent / mask_file, spacing)
                if isinstance(mask_file, str) and mask_file else None)
        for name, amap in maps.items():
            hot = hottest_region(amap, spacing)
            peaks[name].append(hot.peak_hu)
            if mask is not None and mask.shape == amap.shape and mask.any():
                located[name][0].append(amap)
                located[name][1].append(mask)
                located[name][2].append(hot.centre_zyx)

    inlier = labels == "inlier"
    local = np.isin(labels, list(LOCAL))
    anomaly = (labels != None) & ~inlier  # noqa: E711  (None: no truth row)
    rows = []
    for name, values in peaks.items():
        v = np.asarray(values)
        for group, positives in (("local objects", local), ("all anomalies", anomaly)):
            keep = inlier | positives
            rows.append({"map": name, "figure": f"local error AUROC, {group} ({int(positives.sum())}) vs inliers",
                         "value": round(float(roc_auc_score(positives[keep], v[keep])), 3)})
        rho = spearmanr(v[inlier], inputs["pixel_count"].to_numpy(dtype=np.float64)[inlier]).statistic
        rows.append({"map": name, "figure": "Spearman rho of the local error with pixel count (inliers)",
                     "value": round(float(rho), 3)})
        result = localise(*located[name], spacing)
        rows.append({"map": name, "figure": f"hottest region within 10 mm ({result.n_scans} objects)",
                     "value": f"{round(result.hit_rate * result.n_scans)} / {result.n_scans}",
                     "distances_mm": [round(d, 1) for d in result.distances_mm]})
        rows.append({"map": name, "figure": "voxel-level AP", "value": round(result.voxel_ap, 3)})
    return [{"benchmark": "anomaly_maps", "run": run_id, **r} for r in rows]


if __name__ == "__main__":
    main(compare, __doc__.splitlines()[0])
