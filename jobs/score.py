"""`ctae score`: reconstruct every scan with a trained run, store MSE / MSE_m, latents and
anomaly maps with their hottest region, compute the run's outlier score (its kinds of evidence combined:
latent, HU histogram, tissue, contrast, body shape, noise, streaks, series integrity, rings, dense
objects, the local error; MSE_m for its size is measured and stored, not scored;
ctae_core/outlier_score.py), fit T and flag outliers (thesis 3.5).

Resumable: scans the run already scored are skipped (``--overwrite`` redoes them), each batch
is written in its own short transaction, and a scan that fails is recorded in
``scan_failures`` while the job goes on. ``--rethreshold-only`` changes the rule and re-flags
the stored scores without touching the model.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ctae_core.io.volume_store import RUN_VOLUME_KINDS
from ctae_core.thresholds import DEFAULT_P, RULES, ThresholdRule
from data_catalog import CatalogError, CatalogSettings, connect
from data_catalog import scores as catalog_scores
from jobs.job_errors import NOT_READY, JobError, stop
from jobs.options import (
    CatalogOption,
    ExecutorOption,
    NoProgressOption,
    RayAddressOption,
    StoreOption,
    executor_from,
    settings_from,
)
from jobs.runtime import job_run, remove_dead_writers_parts
from jobs.score_evidence import acquisition_inputs, update_outlier_score
from jobs.score_options import KEEP_VOLUMES, ScoreOptions, default_rule

if TYPE_CHECKING:
    import pandas as pd

    from data_catalog.scores import ScoreRecord

__all__ = ["KEEP_VOLUMES", "ScoreOptions", "acquisition_inputs", "default_rule", "run_score"]

RunRow = dict[str, Any]
"""A ``runs`` row as ``data_catalog.scores.read_run`` returns it."""

logger = logging.getLogger(__name__)

FLUSH_RECORDS = 64
FLUSH_SECONDS = 10.0


class ScoreJobError(JobError):
    """The run cannot be scored as asked (unknown run, untrained, missing checkpoint)."""


def checkpoint_fingerprint(path: str | Path) -> str:
    """Size and modification time of a checkpoint: changes when training resumes and rewrites it."""
    stat = Path(path).stat()
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def _stale_scores(run: RunRow, fingerprint: str) -> bool:
    """True when the run's scores came from an earlier state of its checkpoint."""
    stored = json.loads(run["threshold_params_json"] or "{}").get("checkpoint_fingerprint")
    return stored is not None and stored != fingerprint


def load_run(settings: CatalogSettings, run_id: str) -> RunRow:
    """The run's catalog row; refuses unknown and unfinished runs with what to do."""
    with connect(settings.catalog_path) as con:
        run = catalog_scores.read_run(con, run_id)
        known = catalog_scores.run_ids(con)
    if run is None:
        raise ScoreJobError(
            f"run {run_id!r} is not in {settings.catalog_path}; known runs: "
            f"{', '.join(known) or 'none'} — train it first with `ctae train --run {run_id}`"
        )
    if run["status"] != "trained" or not run["checkpoint_path"]:
        raise ScoreJobError(
            f"run {run_id!r} has status {run['status']!r} and checkpoint "
            f"{run['checkpoint_path']!r}; finish training first (`ctae train --run {run_id} --resume`)",
            exit_code=NOT_READY,
        )
    if not Path(run["checkpoint_path"]).exists():
        raise ScoreJobError(
            f"run {run_id!r}: checkpoint {run['checkpoint_path']} is missing; was the store "
            "moved? pass --store, or retrain the run"
        )
    return run


def apply_threshold(settings: CatalogSettings, options: ScoreOptions) -> dict[str, Any]:
    """Fit T on the validation split's scores, store it with the run and re-flag every scan.

    Returns a summary: threshold (None when the validation split has too few scores), n_val,
    flagged.
    """
    with connect(settings.catalog_path) as con:
        val = catalog_scores.validation_scores(con, options.run_id, options.score)
        if val.size < 2:
            logger.warning(
                "run=%s has %d scored validation scans; T needs >= 2 — flags left unset",
                options.run_id, val.size,
            )
            if (stale := catalog_scores.forget_stale_threshold(con, options.run_id)) is not None:
                logger.warning("run=%s: its earlier T (%.5g) does not describe the new scores, "
                               "so it is cleared with every flag", options.run_id, stale)
            return {"threshold": None, "n_val": int(val.size), "flagged": 0}
        threshold = options.rule.threshold(val)
        flagged = catalog_scores.set_threshold(
            con, options.run_id, rule=options.rule.rule, params=options.threshold_params(val.size),
            threshold=threshold, score=options.score,
        )
    logger.info("run=%s T=%.5f (%s, on %s; n_val=%d) flagged=%d", options.run_id, threshold,
                options.rule.describe(), options.score, val.size, flagged)
    return {"threshold": threshold, "n_val": int(val.size), "flagged": int(flagged)}


def prune_volumes(settings: CatalogSettings, run_id: str) -> int:
    """``--keep-volumes flagged``: delete the recon/error files of inliers. Returns the count."""
    with connect(settings.catalog_path) as con:
        stored = catalog_scores.stored_volumes(con, run_id)
    inliers = stored[stored["is_outlier"] == False]  # noqa: E712  (NULL flags are kept)
    for row in inliers.itertuples():
        for path in (row.recon_path, row.error_path):
            if isinstance(path, str):
                Path(path).unlink(missing_ok=True)
    with connect(settings.catalog_path) as con:
        catalog_scores.forget_volumes(con, run_id, list(inliers["scan_id"]))
    return len(inliers)


def score_scans(
    settings: CatalogSettings, options: ScoreOptions, run: RunRow, todo: pd.DataFrame
) -> dict[str, int]:
    """Reconstruct and score the listed scans batch by batch on the chosen executor; the driver
    writes the results every ``FLUSH_RECORDS`` scans or ``FLUSH_SECONDS``."""
    from tqdm import tqdm

    from jobs.executors import map_stateful
    from jobs.score_workers import (
        BatchResult,
        BatchScorer,
        default_local_workers,
        scan_rows,
        threads_per_worker,
    )

    rows = scan_rows(todo)
    batches = [rows[i:i + options.batch_size] for i in range(0, len(rows), options.batch_size)]
    if options.executor != "local" or options.workers is not None:
        config = options.executor_config()
        threads = options.threads or (threads_per_worker(config.local_workers) if config.kind == "local" else None)
    else:  # the default: one single-threaded process per free core, or one with every core
        config = options.executor_config(default_local_workers(options.device, len(batches), options.threads))
        threads = options.threads or (1 if config.local_workers > 1 else None)
    if config.kind == "local" and config.local_workers > 1:
        # inline, a checkpoint that cannot be read ends the job; in a pool every scan would fail
        # with it (reading it builds no model)
        from ctae_core.io.checkpoint import load_checkpoint

        load_checkpoint(run["checkpoint_path"])
    scorer = BatchScorer(run["checkpoint_path"], options, settings.run_dir(options.run_id), threads)
    counts = {"scored": 0, "failed": 0, "to_score": len(rows)}
    logger.info("run=%s scoring %d scans, batch %d, executor %s, %s", options.run_id, len(rows),
                options.batch_size, config.kind,
                f"{config.local_workers} process(es)" if config.kind == "local" else "actors")
    pending: BatchResult = ([], {})
    last_flush = time.monotonic()
    with tqdm(total=len(rows), desc="score", unit="scan", disable=not options.show_progress) as bar:
        for result in map_stateful(scorer, batches, config, actors=True):
            records, failures = result.value if result.ok else (
                [], {row.scan_id: str(result.error) for row in result.item})
            pending[0].extend(records)
            pending[1].update(failures)
            bar.update(len(result.item))
            if sum(map(len, pending)) >= FLUSH_RECORDS or time.monotonic() - last_flush > FLUSH_SECONDS:
                _write_batch(settings, options.run_id, *pending, counts)
                pending, last_flush = ([], {}), time.monotonic()
    _write_batch(settings, options.run_id, *pending, counts)
    for kind in RUN_VOLUME_KINDS:  # a worker killed mid-write left its part; it was scored again
        remove_dead_writers_parts(settings.run_dir(options.run_id) / kind)
    return counts


def _write_batch(
    settings: CatalogSettings, run_id: str, records: list[ScoreRecord], failures: dict[str, str],
    counts: dict[str, int],
) -> None:
    """Write scored records and failures in one short connection; count them."""
    if not records and not failures:
        return
    with connect(settings.catalog_path) as con:
        catalog_scores.write_scores(con, records)
        for scan_id, message in failures.items():
            logger.warning("score failed run=%s scan=%s: %s", run_id, scan_id, message)
            catalog_scores.record_scan_failure(con, run_id, scan_id, "score", message)
    counts["scored"] += len(records)
    counts["failed"] += len(failures)


def run_score(settings: CatalogSettings, options: ScoreOptions) -> dict[str, Any]:
    """Score the run's unscored scans, then threshold and flag. Returns the job's counts."""
    run = load_run(settings, options.run_id)
    fingerprint = checkpoint_fingerprint(run["checkpoint_path"])
    if _stale_scores(run, fingerprint) and not options.overwrite:
        logger.warning("run=%s: the checkpoint changed since the run was scored (training "
                       "resumed?); re-scoring every scan", options.run_id)
        options = replace(options, overwrite=True)
    options = replace(options, checkpoint_fingerprint=fingerprint)
    args = {**asdict(options), "rule": options.rule.to_dict()}
    with job_run(settings, "score", args) as counts:
        with connect(settings.catalog_path) as con:
            todo = catalog_scores.scans_to_score(con, options.run_id, overwrite=options.overwrite)
            counts["already_scored"] = 0 if options.overwrite else len(
                catalog_scores.read_scores(con, options.run_id))
        counts.update(score_scans(settings, options, run, todo))
        counts.update(update_outlier_score(settings, options.run_id))
        counts.update(apply_threshold(settings, options))
        if options.keep_volumes == "flagged" and counts["threshold"] is not None:
            counts["volumes_pruned"] = prune_volumes(settings, options.run_id)
    return counts


def rethreshold(settings: CatalogSettings, options: ScoreOptions) -> dict[str, Any]:
    """Change the run's rule and re-flag the stored scores; nothing is re-scored, so the
    error level and volume policy of the last scoring stay as they were recorded."""
    with connect(settings.catalog_path) as con:
        run = catalog_scores.read_run(con, options.run_id)
        if run is None:
            raise ScoreJobError(f"run {options.run_id!r} is not in {settings.catalog_path}")
    stored = json.loads(run["threshold_params_json"] or "{}")
    options = replace(options, error_level_hu=stored.get("error_level_hu", options.error_level_hu),
                      keep_volumes=stored.get("keep_volumes", options.keep_volumes),
                      checkpoint_fingerprint=stored.get("checkpoint_fingerprint"))
    args = {**asdict(options), "rule": options.rule.to_dict(), "rethreshold_only": True}
    with job_run(settings, "score", args) as counts:
        counts.update(update_outlier_score(settings, options.run_id))
        counts.update(apply_threshold(settings, options))
    return counts


def score(
    run: Annotated[str, typer.Option("--run", help="The trained run to score with.")],
    catalog: CatalogOption = None,
    store: StoreOption = None,
    rule: Annotated[str | None, typer.Option(help=f"Threshold rule: {' | '.join(RULES)}. Default: pvalue for the outlier score, mean_std (thesis eq. 3.4) for the others.")] = None,
    k: Annotated[float, typer.Option(help="k of mean + k·std or median + k·MAD.")] = 3.0,
    percentile: Annotated[float, typer.Option(help="Percentile for --rule percentile.")] = 99.0,
    p_value: Annotated[float, typer.Option("--p", help="Null probability for --rule pvalue: how rarely an inlier's strongest evidence reaches T.")] = DEFAULT_P,
    score_name: Annotated[str, typer.Option("--score", help="Score T applies to: outlier_score (its calibrated kinds of evidence combined: the strongest, or the three strongest together) | mse_m (the thesis) | mse | mse_region | local_error_hu (the anomaly map's peak).")] = "outlier_score",
    keep_volumes: Annotated[str, typer.Option(help="Store recon/|error| volumes for: all | flagged | none.")] = "all",
    error_level: Annotated[float, typer.Option("--error-level", help="|error| in HU that counts a body voxel in error_fraction.")] = 200.0,
    batch_size: Annotated[int, typer.Option(help="Scans per forward pass.")] = 4,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda | cuda:N.")] = "auto",
    rethreshold_only: Annotated[bool, typer.Option("--rethreshold-only", help="Only refit T with this rule and re-flag; no model.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Re-score scans the run already scored.")] = False,
    executor: ExecutorOption = "local",
    workers: Annotated[int | None, typer.Option("--workers", help="local: scoring processes, each with free cores / N torch threads unless --threads says (default on the CPU: one single-threaded process per free core, or per --threads cores, where the memory holds 3 GiB for each, else 1 with every core; 1 on a GPU); ray: actors (default one per GPU, else per CPU).")] = None,
    ray_address: RayAddressOption = None,
    threads: Annotated[int | None, typer.Option("--threads", min=1, help="CPU threads for torch in each scoring process or Ray actor (default: see --workers). Scores depend on it in their last digits; fix it to reproduce a scoring exactly.")] = None,
    no_progress: NoProgressOption = False,
) -> None:
    """Reconstruct every scan, store MSE / MSE_m / latents / error volumes, set T and flag."""
    settings = settings_from(catalog, store, follow_store=True, existing=True)
    executor_from(executor, ray_address, workers)  # usage errors before any work
    try:
        options = ScoreOptions(
            run_id=run, rule=ThresholdRule(rule or default_rule(score_name), k, percentile, p_value),
            score=score_name,
            keep_volumes=keep_volumes, error_level_hu=error_level, batch_size=batch_size,
            device=device, overwrite=overwrite, show_progress=not no_progress,
            executor=executor, workers=workers, ray_address=ray_address, threads=threads,
        )
        counts = rethreshold(settings, options) if rethreshold_only else run_score(settings, options)
    except CatalogError:  # `ctae` says it, with the catalog's exit code (jobs.launch)
        raise
    except (ScoreJobError, ValueError, RuntimeError) as err:  # RuntimeError: Ray missing
        raise stop("score", err) from err
    threshold = counts.get("threshold")
    t_text = "not set (too few validation scores)" if threshold is None else f"{threshold:.5f}"
    typer.echo(
        f"run {run}: scored {counts.get('scored', 0)}, failed {counts.get('failed', 0)}, "
        f"T = {t_text} ({options.rule.describe()}, on {options.score}; n_val = "
        f"{counts.get('n_val', 0)}), flagged {counts.get('flagged', 0)}"
    )
    if failed := counts.get("failed", 0):
        # what failed is kept out of T and the flags; a second run scores only what is missing
        error = JobError(f"{failed} scan(s) of run {run!r} could not be scored (see the warnings "
                         f"above); once the cause is mended, `ctae score --run {run}` scores "
                         "only those", exit_code=NOT_READY)
        if counts.get("scored", 0) or counts.get("already_scored", 0):
            typer.secho(f"ctae score: {error}", fg=typer.colors.YELLOW, err=True)
        else:  # the run has nothing scored to flag: nothing could be done
            raise stop("score", error)


def register(app: typer.Typer) -> None:
    """Add `ctae score` to the CLI."""
    app.command("score")(score)
