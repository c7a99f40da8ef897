"""`ctae embed`: the run's latent vectors → UMAP 2D (seeded) → DBSCAN clusters (thesis 3.6),
stored in ``embeddings``; per-cluster statistics come from ``data_catalog.scores``.

UMAP embeds all points together, so this job is one batch: it is idempotent (the run's
embedding is replaced in one transaction) and skipped when the stored embedding was made from
the same latents with the same parameters (``--overwrite`` forces it). With ``--executor ray``
the UMAP + DBSCAN step runs as one Ray task on the cluster (where the memory is); the driver
reads the latents and writes the result.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import asdict
from typing import Annotated, Any

import numpy as np
import typer

from ctae_core.features import EmbedConfig
from data_catalog import CatalogError, CatalogSettings, connect
from data_catalog import scores as catalog_scores
from jobs.executors import ExecutorConfig, map_tasks
from jobs.job_errors import NOT_READY, JobError, stop
from jobs.options import (
    CatalogOption,
    ExecutorOption,
    NoProgressOption,
    RayAddressOption,
    executor_from,
    settings_from,
)
from jobs.runtime import job_run

logger = logging.getLogger(__name__)


class EmbedJobError(JobError):
    """The run has nothing (or too little) to embed."""


def _load_latents(settings: CatalogSettings, run_id: str) -> tuple[list[str], np.ndarray, int]:
    """(scan_ids, latents, failures) of the run's scored scans; scans with a NaN latent are
    recorded in scan_failures and left out."""
    with connect(settings.catalog_path) as con:
        if catalog_scores.read_run(con, run_id) is None:
            raise EmbedJobError(
                f"run {run_id!r} is not in {settings.catalog_path}; known runs: "
                f"{', '.join(catalog_scores.run_ids(con)) or 'none'}"
            )
        scan_ids, latents = catalog_scores.latents_for_run(con, run_id)
        if not scan_ids:
            raise EmbedJobError(f"run {run_id!r} has no latent vectors; run `ctae score --run {run_id}` first",
                                exit_code=NOT_READY)
        finite = np.isfinite(latents).all(axis=1)
        for scan_id in np.asarray(scan_ids)[~finite]:
            catalog_scores.record_scan_failure(
                con, run_id, str(scan_id), "embed",
                "latent vector holds NaN or inf; re-score it with `ctae score --overwrite`",
            )
    kept = [s for s, ok in zip(scan_ids, finite, strict=True) if ok]
    return kept, latents[finite], int((~finite).sum())


def latents_digest(scan_ids: list[str], latents: np.ndarray) -> str:
    """SHA-1 of the scan ids and latent values: changes when scans are re-scored."""
    digest = hashlib.sha1("\n".join(scan_ids).encode())
    digest.update(np.ascontiguousarray(latents, dtype=np.float32).tobytes())
    return digest.hexdigest()


def embed_points(job: tuple[np.ndarray, EmbedConfig]) -> tuple[np.ndarray, np.ndarray]:
    """UMAP 2D points (N, 2) and DBSCAN cluster labels (N,) of latents (N, latent); the one
    step of embed that may run remotely."""
    from ctae_core.features import dbscan_labels, umap_embed

    latents, config = job
    points = umap_embed(latents, n_neighbors=config.n_neighbors, min_dist=config.min_dist,
                        seed=config.seed)
    return points, dbscan_labels(points, eps=config.eps, min_pts=config.min_pts)


def _embed_remote(latents: np.ndarray, config: EmbedConfig, executor: ExecutorConfig):
    """``embed_points`` as one task on the executor; its error (or worker death) ends the job."""
    (result,) = map_tasks(embed_points, [(latents, config)], executor)
    if not result.ok:
        raise EmbedJobError(f"the embedding task failed on {executor.kind}: {result.error}",
                            exit_code=NOT_READY)
    return result.value


def run_embed(
    settings: CatalogSettings, run_id: str, config: EmbedConfig, *, overwrite: bool = False,
    show_progress: bool = True, executor: ExecutorConfig | None = None,
) -> dict[str, Any]:
    """Embed and cluster the run's latents unless an identical embedding is stored.

    ``executor``: None or local computes here; ``ray`` sends the computation to the cluster.
    """
    from ctae_core.features import cluster_summary

    scan_ids, latents, n_bad = _load_latents(settings, run_id)
    wanted = {**config.to_dict(), "latents_sha1": latents_digest(scan_ids, latents)}
    with connect(settings.catalog_path) as con:
        params, embedded = catalog_scores.embedding_state(con, run_id)
    if not overwrite and params == wanted and embedded == set(scan_ids):
        logger.info("run=%s embedding of %d scans is up to date; skipped", run_id, len(scan_ids))
        return {"embedded": len(scan_ids), "skipped": True, "failed": n_bad}
    remote = executor is not None and executor.kind == "ray"
    args = {"run_id": run_id, **asdict(config), "executor": "ray" if remote else "local"}
    with job_run(settings, "embed", args) as counts:
        if remote:
            logger.info("run=%s: UMAP + DBSCAN of %d latents as a Ray task", run_id, len(scan_ids))
            points, clusters = _embed_remote(latents, config, executor)
        else:
            points, clusters = _embed_here(latents, config, show_progress)
        with connect(settings.catalog_path) as con:
            catalog_scores.write_embeddings(con, run_id, scan_ids, points, clusters, wanted)
        summary = cluster_summary(clusters, {})
        counts.update(embedded=len(scan_ids), failed=n_bad, skipped=False,
                      clusters=sum(1 for r in summary if r["cluster"] >= 0),
                      noise=int((clusters < 0).sum()))
    return counts


def _embed_here(latents: np.ndarray, config: EmbedConfig, show_progress: bool):
    """UMAP then DBSCAN in this process, with a two-step progress bar."""
    from tqdm import tqdm

    from ctae_core.features import dbscan_labels, umap_embed

    with tqdm(total=2, desc="embed", disable=not show_progress) as bar:
        bar.set_postfix_str(f"UMAP of {len(latents)} latents")
        points = umap_embed(latents, n_neighbors=config.n_neighbors,
                            min_dist=config.min_dist, seed=config.seed)
        bar.update()
        bar.set_postfix_str("DBSCAN")
        clusters = dbscan_labels(points, eps=config.eps, min_pts=config.min_pts)
        bar.update()
    return points, clusters


def embed(
    run: Annotated[str, typer.Option("--run", help="The scored run whose latents to embed.")],
    catalog: CatalogOption = None,
    eps: Annotated[float, typer.Option(help="DBSCAN eps, in UMAP units (thesis 0.5).")] = 0.5,
    min_pts: Annotated[int, typer.Option("--min-pts", help="DBSCAN minPts (thesis 5).")] = 5,
    n_neighbors: Annotated[int, typer.Option(help="UMAP n_neighbors.")] = 15,
    min_dist: Annotated[float, typer.Option(help="UMAP min_dist.")] = 0.1,
    seed: Annotated[int, typer.Option(help="UMAP random state (repeatable embedding).")] = 0,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Recompute even if up to date.")] = False,
    executor: ExecutorOption = "local",
    ray_address: RayAddressOption = None,
    no_progress: NoProgressOption = False,
) -> None:
    """UMAP the run's latent vectors to 2D and cluster them with DBSCAN."""
    settings = settings_from(catalog, existing=True)
    config_exec = executor_from(executor, ray_address)
    try:
        config = EmbedConfig(n_neighbors=n_neighbors, min_dist=min_dist, seed=seed, eps=eps,
                             min_pts=min_pts)
        counts = run_embed(settings, run, config, overwrite=overwrite,
                           show_progress=not no_progress, executor=config_exec)
    except CatalogError:  # `ctae` says it, with the catalog's exit code (jobs.launch)
        raise
    except (EmbedJobError, ValueError, RuntimeError) as err:  # RuntimeError: Ray missing
        raise stop("embed", err) from err
    if counts.get("skipped"):
        typer.echo(f"run {run}: embedding of {counts['embedded']} scans is up to date")
        return
    with connect(settings.catalog_path, read_only=True) as con:
        stats = catalog_scores.cluster_statistics(con, run)
    typer.echo(f"run {run}: embedded {counts['embedded']} scans, {counts['clusters']} clusters, "
               f"{counts['noise']} noise points")
    typer.echo(stats.to_string(index=False, float_format=lambda v: f"{v:.4g}"))


def register(app: typer.Typer) -> None:
    """Add `ctae embed` to the CLI."""
    app.command("embed")(embed)
