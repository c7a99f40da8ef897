"""Synthetic catalogs for tests and benchmarks: N scans with scores, embeddings and labels.

Rows go in through ordinary ``INSERT … SELECT`` from Arrow tables, so 100k scans take about a
second and 1M about ten. Only the first ``n_volume_files`` scans get real arrays in the store;
the other rows reuse those files cyclically, so every path in the catalog opens. The arrays
are written by the caller (``jobs/synthetic_catalog.py``: phantoms and the store's format are
not the catalog's business) and handed in as ``SyntheticFiles``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pyarrow as pa

from data_catalog.connection import connect, transaction
from data_catalog.settings import CatalogSettings

HU_EDGES = np.arange(-1024, 3073, 64)
OUTLIER_CAUSES = ("metal implant", "cable or tube", "field of view", "artefact or noise")
REVIEWERS = ("alice", "bob")


@dataclass(frozen=True)
class SyntheticSpec:
    """What to generate. Defaults give a small catalog with one fully processed run.

    Attributes:
        n_scans: Rows in ``scans``.
        run_id: The run to create, or None for a catalog with scans but no run.
        with_embeddings: Write ``embeddings`` for the run.
        with_labels: Let two reviewers label some flagged scans (with a few disagreements).
        n_volume_files: Scans that get their own arrays in the store (the rest reuse them).
        shape_zyx: Stored volume shape at ``spacing_mm``.
        spacing_mm: Stored volume spacing; the run's spacing is twice this.
        n_ingest_errors: Rows in ``ingest_errors``.
        seed: Seed of the generator; the same spec gives the same catalog.
    """

    n_scans: int = 60
    run_id: str | None = "synthetic"
    with_embeddings: bool = True
    with_labels: bool = True
    n_volume_files: int = 4
    shape_zyx: tuple[int, int, int] = (24, 40, 40)
    spacing_mm: float = 3.0
    n_ingest_errors: int = 3
    seed: int = 0


def file_has_metal(index: int) -> bool:
    """Whether volume file ``index`` holds metal (every second one does)."""
    return index % 2 == 1


@dataclass(frozen=True)
class SyntheticFiles:
    """The arrays a synthetic catalog points to, one entry per volume file.

    Attributes:
        volume_paths: Stored scans (file ``i`` holds metal iff ``file_has_metal(i)``).
        recon_paths, error_paths: The run's reconstruction and |error| of each (empty if no run).
        histograms: Each scan's counts in the 64 ``HU_EDGES`` bins.
    """

    volume_paths: list[str] = field(default_factory=list)
    recon_paths: list[str] = field(default_factory=list)
    error_paths: list[str] = field(default_factory=list)
    histograms: list[np.ndarray] = field(default_factory=list)


def _histograms(n: int, rng: np.random.Generator, base: list[np.ndarray]) -> pa.Array:
    """n 64-bin histograms as an Arrow list<int32> column: the files' ones, cycled, with the
    body bins scaled per scan (integer maths on int32: 1M scans in well under a second)."""
    if not base:
        base = [np.histogram(np.array([-1000, 40, 700]), bins=HU_EDGES)[0].astype(np.int32)]
    values = np.resize(np.stack(base).astype(np.int32), (n, 64))
    values[:, 16:] *= rng.integers(1, 4, (n, 1), dtype=np.int32)  # vary the non-air voxels
    offsets = np.arange(0, 64 * n + 1, 64, dtype=np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(values.ravel()))


def _scans_table(spec, rng, n, metal, paths, hists) -> pa.Table:
    idx = np.arange(n)
    ids = np.char.add("syn", np.char.zfill(idx.astype(str), 7))
    size_z = rng.integers(40, 120, n) + (rng.random(n) < 0.03) * rng.integers(100, 300, n)
    size_yx = rng.integers(100, 171, n)
    hu_max = np.where(metal, 3071.0, rng.normal(1400, 200, n).clip(300, 3000))
    k = min(len(paths), n)  # rows with their own files describe those files exactly
    size_z[:k], size_yx[:k] = spec.shape_zyx[0], spec.shape_zyx[1]
    return pa.table(
        {
            "scan_id": ids,
            "source_path": np.char.add(
                np.char.add("patient", np.char.zfill((idx // 2).astype(str), 6)),
                np.char.add("/series", (idx % 2).astype(str)),
            ),
            "series_uid": np.char.add("1.2.826.0.1.3680043.8.498.", (idx + 1).astype(str)),
            "size_z": size_z.astype(np.int32),
            "size_y": size_yx.astype(np.int32),
            "size_x": size_yx.astype(np.int32),
            "pixel_count": (size_z * size_yx * size_yx).astype(np.int64),
            "hu_mean": rng.normal(-420, 90, n),
            "hu_std": rng.normal(480, 40, n),
            "hu_min": np.full(n, -1024.0),
            "hu_max": hu_max,
            "metal_voxels": np.where(metal, rng.integers(20, 400, n), 0).astype(np.int64),
            "hu_histogram": hists,
            "volume_path": [paths[i % len(paths)] for i in range(n)] if paths else ids,
        }
    )


def _scores_tables(spec, rng, n, metal, scans: pa.Table, recons, errors):
    """Scores (MSE_m biased by size, outliers above it), the threshold T and embeddings."""
    pixel = scans.column("pixel_count").to_numpy()
    outlier = metal | (rng.random(n) < 0.01)
    mse_m = 0.12 + 0.04 * (pixel / pixel.mean()) + rng.normal(0, 0.012, n)
    mse_m = np.where(outlier, mse_m + rng.uniform(0.05, 0.3, n), mse_m).clip(0.01)
    split = rng.choice(np.array(["train", "val", "test"]), n, p=[0.8, 0.1, 0.1])
    val = mse_m[split == "val"] if (split == "val").any() else mse_m
    threshold = float(val.mean() + 3 * val.std())
    cyc = np.arange(n) % max(len(recons), 1)  # same cycle as volume_path: pairs match
    scores = pa.table(
        {
            "scan_id": scans.column("scan_id"),
            "split": split,
            "mse": mse_m * 0.4,
            "mse_region": mse_m * 0.8,
            "mse_m": mse_m,
            "is_outlier": mse_m > threshold,
            "recon_path": [recons[c] for c in cyc] if recons else [None] * n,
            "error_path": [errors[c] for c in cyc] if errors else [None] * n,
        }
    )
    blob = np.where(outlier, 3, rng.integers(0, 3, n))
    centres = np.array([[0.0, 0.0], [6.0, 1.0], [2.0, 6.0], [9.0, 8.0]])
    xy = centres[blob] + rng.normal(0, 0.8, (n, 2))
    cluster = np.where(rng.random(n) < 0.02, -1, blob).astype(np.int32)
    emb = pa.table(
        {
            "scan_id": scans.column("scan_id"),
            "umap_x": xy[:, 0],
            "umap_y": xy[:, 1],
            "cluster": cluster,
        }
    )
    return scores, emb, threshold, outlier


def _labels_table(rng, scores: pa.Table, metal) -> pa.Table:
    """Two reviewers label the flagged scans; bob disagrees on every fourth one."""
    flagged = np.flatnonzero(scores.column("is_outlier").to_numpy(zero_copy_only=False))
    ids = scores.column("scan_id").to_numpy(zero_copy_only=False)
    rows = []
    base = np.datetime64("2026-01-05T09:00:00")
    for k, i in enumerate(flagged):
        verdict = "outlier" if metal[i] or k % 3 else "unsure"
        causes = ["metal implant"] if metal[i] else [OUTLIER_CAUSES[k % 4]]
        rows.append((ids[i], "alice", verdict, causes, base + np.timedelta64(2 * k, "s")))
        if k % 2 == 0:
            bob = "inlier" if k % 4 == 0 else verdict
            rows.append(
                (
                    ids[i],
                    "bob",
                    bob,
                    [] if bob == "inlier" else causes,
                    base + np.timedelta64(2 * k + 1, "s"),
                )
            )
    cols = list(zip(*rows, strict=True)) if rows else [[], [], [], [], []]
    return pa.table(
        {
            "label_id": [f"syn-label-{j:08d}" for j in range(len(rows))],
            "scan_id": pa.array(cols[0], pa.string()),
            "reviewer": pa.array(cols[1], pa.string()),
            "verdict": pa.array(cols[2], pa.string()),
            "causes": pa.array(cols[3], pa.list_(pa.string())),
            "created_at": pa.array(np.array(cols[4], dtype="datetime64[us]"), pa.timestamp("us")),
        }
    )


_INSERT_SCANS = """
INSERT INTO scans (scan_id, source_kind, source_root, source_path, series_uid, fingerprint,
    content_hash, manufacturer, kernel, spacing_mm, size_z, size_y, size_x, pixel_count,
    hu_mean, hu_std, hu_min, hu_max, body_voxels, metal_voxels, hu_histogram, volume_path)
SELECT scan_id, 'dicom', '/data/synthetic', source_path, series_uid, 'fp-' || scan_id,
    'sha-' || scan_id, 'SYNTH', 'B30f', $spacing, size_z, size_y, size_x, pixel_count,
    hu_mean, hu_std, hu_min, hu_max, pixel_count // 2, metal_voxels, hu_histogram, volume_path
FROM t_scans
"""
_INSERT_RUN = """
INSERT INTO runs (run_id, preset, status, config_json, spacing_mm, norm_mean, norm_std,
    epochs_done, best_val_loss, threshold_rule, threshold_params_json, threshold,
    threshold_score, embed_params_json)
VALUES ($run_id, 'synthetic', 'trained', $config, $spacing, -420.0, 480.0, 30, $best,
    'mean_std', '{"k": 3}', $threshold, 'mse_m', $embed)
"""
_INSERT_HISTORY = """
INSERT INTO train_history (run_id, epoch, train_loss, val_loss, learning_rate)
SELECT $run_id, e, 0.1 + 0.9 * exp(-e / 6.0), 0.14 + 0.9 * exp(-e / 6.5), 0.05
FROM range(1, 31) AS t(e)
"""


def write_synthetic_rows(
    settings: CatalogSettings, spec: SyntheticSpec, files: SyntheticFiles = SyntheticFiles()
) -> dict[str, float]:
    """Fill ``settings``' catalog with a synthetic dataset whose arrays are ``files``; returns a
    summary. The catalog must hold no scans; ``files`` must hold ``spec.n_volume_files`` entries
    (``jobs.synthetic_catalog.build_synthetic_catalog`` writes them and calls this)."""
    if len(files.volume_paths) != spec.n_volume_files:
        raise ValueError(f"spec asks for {spec.n_volume_files} volume files, "
                         f"{len(files.volume_paths)} were handed in")
    rng = np.random.default_rng(spec.seed)
    n = spec.n_scans
    metal = rng.random(n) < 0.02
    n_files = min(spec.n_volume_files, n)
    metal[:n_files] = [file_has_metal(i) for i in range(n_files)]
    vols, recons, errors = files.volume_paths, files.recon_paths, files.error_paths
    t_scans = _scans_table(spec, rng, n, metal, vols, _histograms(n, rng, files.histograms))
    with connect(settings.catalog_path) as con, transaction(con):
        if con.execute("SELECT count(*) FROM scans").fetchall()[0][0]:
            raise ValueError(f"{settings.catalog_path} already holds scans; use an empty catalog")
        con.register("t_scans", t_scans)
        con.execute(_INSERT_SCANS, {"spacing": spec.spacing_mm})
        _insert_ingest_errors(con, spec.n_ingest_errors)
        summary: dict[str, float] = {"scans": n}
        if spec.run_id is not None:
            summary |= _insert_run(con, spec, rng, n, metal, t_scans, recons, errors)
    return summary


def _insert_ingest_errors(con: duckdb.DuckDBPyConnection, count: int) -> None:
    reasons = ["not_ct", "too_few_slices", "missing_slices"]
    for i in range(count):
        con.execute(
            "INSERT INTO ingest_errors (source_key, source_root, source_path, reason, message) "
            "VALUES (?, '/data/synthetic', ?, ?, ?)",
            [
                f"err{i}",
                f"broken/series{i}",
                reasons[i % 3],
                f"broken/series{i}: {reasons[i % 3].replace('_', ' ')}; check the export",
            ],
        )


def _insert_run(con, spec, rng, n, metal, t_scans, recons, errors) -> dict[str, float]:
    scores, emb, threshold, outlier = _scores_tables(spec, rng, n, metal, t_scans, recons, errors)
    con.execute(
        _INSERT_RUN,
        {
            "run_id": spec.run_id,
            "config": json.dumps({"synthetic": True, "seed": spec.seed}),
            "spacing": 2 * spec.spacing_mm,
            "best": 0.15,
            "threshold": threshold,
            "embed": json.dumps({"eps": 0.5, "min_pts": 5}),
        },
    )
    con.execute(_INSERT_HISTORY, {"run_id": spec.run_id})
    con.register("t_scores", scores)
    con.execute("INSERT INTO splits SELECT $r, scan_id, split FROM t_scores", {"r": spec.run_id})
    con.execute(
        "INSERT INTO scores (run_id, scan_id, split, mse, mse_region, mse_m, is_outlier, "
        "recon_path, error_path) SELECT $r, scan_id, split, mse, mse_region, mse_m, is_outlier, "
        "recon_path, error_path FROM t_scores",
        {"r": spec.run_id},
    )
    if spec.with_embeddings:
        con.register("t_emb", emb)
        con.execute("INSERT INTO embeddings SELECT $r, * FROM t_emb", {"r": spec.run_id})
    n_labels = 0
    if spec.with_labels:
        labels = _labels_table(rng, scores, metal)
        con.register("t_labels", labels)
        con.execute(
            "INSERT INTO labels (label_id, scan_id, reviewer, verdict, causes, run_id, created_at)"
            " SELECT label_id, scan_id, reviewer, verdict, causes, $r, created_at FROM t_labels",
            {"r": spec.run_id},
        )
        n_labels = labels.num_rows
    flagged = int(scores.column("is_outlier").to_numpy(zero_copy_only=False).sum())
    return {
        "threshold": threshold,
        "flagged": flagged,
        "planted_outliers": int(outlier.sum()),
        "labels": n_labels,
    }
