"""`ctae score`: reconstruct every scan with a trained run, store MSE / MSE_m, latents and
viewer volumes, compute the run's outlier score (the strongest of eight kinds of evidence:
MSE_m, latent, HU histogram, tissue, contrast, body shape, noise, series integrity; streaks are
measured and stored, not scored; ctae_core/outlier_score.py), fit T and flag outliers (thesis 3.5).

Resumable: scans the run already scored are skipped (``--overwrite`` redoes them), each batch
is written in its own short transaction, and a scan that fails is recorded in
``scan_failures`` while the job goes on. ``--rethreshold-only`` changes the rule and re-flags
the stored scores without touching the model.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
import typer

from ctae_core.thresholds import RULES, ThresholdRule
from data_catalog import CatalogSettings, connect
from data_catalog import scores as catalog_scores
from jobs.acquisition import measure_stored_scans
from jobs.executors import ExecutorConfig
from jobs.options import (
    CatalogOption,
    ExecutorOption,
    NoProgressOption,
    RayAddressOption,
    StoreOption,
    executor_from,
    settings_from,
)
from jobs.runtime import job_run, stack_lists

if TYPE_CHECKING:
    import pandas as pd

    from ctae_core.outlier_score import AcquisitionInputs

logger = logging.getLogger(__name__)

KEEP_VOLUMES = ("all", "flagged", "none")
FLUSH_RECORDS = 64
FLUSH_SECONDS = 10.0


class ScoreJobError(RuntimeError):
    """The run cannot be scored as asked (unknown run, untrained, missing checkpoint)."""


@dataclass(frozen=True)
class ScoreOptions:
    """What `ctae score` was asked to do; stored in job_runs."""

    run_id: str
    rule: ThresholdRule = ThresholdRule("pvalue")
    score: str = "outlier_score"
    keep_volumes: str = "all"
    error_level_hu: float = 200.0
    batch_size: int = 4
    device: str = "auto"
    overwrite: bool = False
    show_progress: bool = True
    channels_last: bool = True
    checkpoint_fingerprint: str | None = None
    executor: str = "local"
    workers: int | None = None
    ray_address: str | None = None

    def executor_config(self) -> ExecutorConfig:
        """Where batches are scored: in this process (local, 1 worker, the default: torch uses
        every core), N local processes, or Ray actors (one GPU each where there are GPUs)."""
        workers = self.workers if self.executor == "ray" else (self.workers or 1)
        return ExecutorConfig(kind=self.executor, workers=workers,  # type: ignore[arg-type]
                              ray_address=self.ray_address)

    def __post_init__(self) -> None:
        if self.keep_volumes not in KEEP_VOLUMES:
            raise ValueError(f"--keep-volumes must be one of {KEEP_VOLUMES}, not {self.keep_volumes!r}")
        if self.score not in catalog_scores.SCORE_COLUMNS:
            raise ValueError(
                f"--score must be one of {catalog_scores.SCORE_COLUMNS}, not {self.score!r}"
            )
        if self.rule.rule == "pvalue" and self.score != "outlier_score":
            raise ValueError(
                f"--rule pvalue applies to the outlier score only (its evidence is calibrated); "
                f"threshold {self.score} with --rule mean_std, mad or percentile"
            )
        if self.batch_size < 1:
            raise ValueError(f"--batch-size must be >= 1, not {self.batch_size}")
        if self.error_level_hu <= 0:
            raise ValueError(f"--error-level must be > 0 HU, not {self.error_level_hu}")

    def threshold_params(self, n_val: int) -> dict[str, Any]:
        """What is stored in runs.threshold_params_json."""
        return {**self.rule.to_dict(), "n_val": n_val, "error_level_hu": self.error_level_hu,
                "keep_volumes": self.keep_volumes,
                "checkpoint_fingerprint": self.checkpoint_fingerprint}


def default_rule(score: str) -> str:
    """The rule T follows unless --rule says otherwise: a p-value for the outlier score (whose
    heavy tail makes mean + 3·std follow any outlier in the validation split), the thesis's
    mean + 3·std (eq. 3.4) for the reconstruction errors."""
    return "pvalue" if score == "outlier_score" else "mean_std"


def checkpoint_fingerprint(path: str | Path) -> str:
    """Size and modification time of a checkpoint: changes when training resumes and rewrites it."""
    stat = Path(path).stat()
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def _stale_scores(run: dict[str, Any], fingerprint: str) -> bool:
    """True when the run's scores came from an earlier state of its checkpoint."""
    stored = json.loads(run["threshold_params_json"] or "{}").get("checkpoint_fingerprint")
    return stored is not None and stored != fingerprint


def load_run(settings: CatalogSettings, run_id: str) -> dict[str, Any]:
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
            f"{run['checkpoint_path']!r}; finish training first (`ctae train --run {run_id} --resume`)"
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
            return {"threshold": None, "n_val": int(val.size), "flagged": 0}
        threshold = options.rule.threshold(val)
        flagged = catalog_scores.set_threshold(
            con, options.run_id, rule=options.rule.rule, params=options.threshold_params(val.size),
            threshold=threshold, score=options.score,
        )
    logger.info("run=%s T=%.5f (%s, on %s; n_val=%d) flagged=%d", options.run_id, threshold,
                options.rule.describe(), options.score, val.size, flagged)
    return {"threshold": threshold, "n_val": int(val.size), "flagged": int(flagged)}


def update_outlier_score(settings: CatalogSettings, run_id: str) -> dict[str, Any]:
    """Recompute the run's outlier score and its evidence for every scored scan (normal is
    fitted on, and z-scores calibrated against, every scored scan) and store them.
    Cheap (no model), so it is redone whenever scans are added. Scans not yet measured (noise,
    body outline, streaks) are measured first, from their stored volumes. Returns counts for
    job_runs."""
    from ctae_core.outlier_score import acquisition_groups, outlier_evidence

    counts: dict[str, Any] = measure_stored_scans(settings)
    with connect(settings.catalog_path) as con:
        inputs = catalog_scores.evidence_inputs(con, run_id)
    if inputs.empty:
        return {**counts, "outlier_scores": 0}
    latents = stack_lists(inputs["latent"])
    histograms = stack_lists(inputs["hu_histogram"])
    if histograms is None:
        logger.warning("run=%s: some scans lack an HU histogram (ingested by an older ctae?); the "
                       "outlier score leaves histogram, tissue and contrast evidence out — "
                       "re-ingest to add it", run_id)
    evidence = outlier_evidence(
        inputs["mse_m"].to_numpy(dtype=np.float64, na_value=np.nan),
        inputs["pixel_count"].to_numpy(dtype=np.float64),
        latents, histograms, reference_rows=np.ones(len(inputs), dtype=bool),
        acquisition=acquisition_inputs(inputs),
        groups=acquisition_groups(inputs["manufacturer"].to_numpy(), inputs["kernel"].to_numpy()),
    )
    n_scored = int(np.isfinite(evidence.outlier_score).sum())
    if n_scored == 0:
        logger.warning("run=%s: too few training scans to fit the outlier score; threshold "
                       "--score mse_m instead", run_id)
    with connect(settings.catalog_path) as con:
        catalog_scores.write_outlier_evidence(con, run_id, list(inputs["scan_id"]),
                                              evidence.as_columns())
    return {**counts, "outlier_scores": n_scored}


def acquisition_inputs(inputs: pd.DataFrame) -> AcquisitionInputs:
    """``AcquisitionInputs`` of ``evidence_inputs`` rows: a scan never measured, or measured
    without a body, has NaN noise / outline (its evidence is left out, not guessed)."""
    from ctae_core.acquisition import PROFILE_DIRECTIONS
    from ctae_core.outlier_score import AcquisitionInputs

    nan_profile = [np.nan] * PROFILE_DIRECTIONS
    profiles = np.array([
        list(p) if isinstance(p, list | tuple | np.ndarray) and len(p) == PROFILE_DIRECTIONS
        else nan_profile for p in inputs["body_profile"]
    ], dtype=np.float64).reshape(len(inputs), PROFILE_DIRECTIONS)
    edge = inputs["body_edge_mm"].to_numpy(dtype=np.float64, na_value=np.nan)
    return AcquisitionInputs(
        noise_hu=inputs["noise_hu"].to_numpy(dtype=np.float64, na_value=np.nan),
        body_shape=np.column_stack([profiles, edge]),
        streak_contrast=inputs["streak_contrast"].to_numpy(dtype=np.float64, na_value=np.nan),
        series_defects=inputs["series_defects"].to_numpy(dtype=np.float64, na_value=np.nan),
    )


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


def _prepare(row: Any, spec: Any) -> Any:
    """Load one stored scan and turn it into the model's input (resample, normalise, pad)."""
    from ctae_core.inference import prepare_input
    from ctae_core.io.volume_store import load_volume

    return prepare_input(load_volume(row.volume_path), float(row.spacing_mm), spec, name=row.scan_id)


def _forward(
    model: Any, xs: list[np.ndarray], device: str, channels_last: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Reconstructions (B, Z, Y, X) and latent vectors (B, latent) of a batch of inputs, exactly
    as ``ctae_core.inference.reconstruct`` computes them for one. ``channels_last``: the model
    was moved to channels_last_3d (:func:`_inference_model`), so the input follows."""
    import torch

    with torch.inference_mode():
        t = torch.from_numpy(np.stack(xs).astype(np.float32, copy=False))[:, None].to(device)
        if channels_last:
            t = t.contiguous(memory_format=torch.channels_last_3d)
        code = model.encode_map(t)
        latent = model.pool(code).flatten(1)
        recon = model.decode(latent if model.cfg.bottleneck == "global" else code,
                             tuple(t.shape[2:]))
    return recon[:, 0].float().cpu().numpy(), latent.float().cpu().numpy()


def _inference_model(checkpoint_path: str, device: str, channels_last: bool) -> tuple[Any, Any]:
    """The run's model and InputSpec; channels_last_3d makes 3D convolutions ~3× faster on the
    CPU (same results to 1e-6, measured with benchmarks/bench_score.py)."""
    import torch

    from ctae_core.inference import load_run_model

    model, spec = load_run_model(checkpoint_path, device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last_3d)
    return model, spec


def _record(
    row: Any, prepared: Any, recon: np.ndarray, latent: np.ndarray, spec: Any,
    options: ScoreOptions, run_dir: Path,
) -> catalog_scores.ScoreRecord:
    """Score one reconstructed scan and store its recon / |error| volumes (int16 HU)."""
    from ctae_core.io.volume_store import save_volume
    from ctae_core.scoring import abs_error_hu, recon_hu, score_scan

    p = prepared
    s = score_scan(p.x, recon, p.region, p.hu, norm_std_hu=spec.norm_std_hu,
                   error_level_hu=options.error_level_hu)
    max_zyx = tuple(i + k.start for i, k in zip(s.max_error_zyx, p.kept, strict=True))
    recon_file = run_dir / "recon" / f"{row.scan_id}.npy"
    error_file = run_dir / "error" / f"{row.scan_id}.npy"
    recon_path = error_path = None
    if options.keep_volumes == "none":  # no stale volumes of an earlier scoring stay behind
        recon_file.unlink(missing_ok=True)
        error_file.unlink(missing_ok=True)
    else:
        r = recon[p.region]
        recon_path = str(save_volume(
            recon_hu(r, norm_mean_hu=spec.norm_mean_hu, norm_std_hu=spec.norm_std_hu), recon_file))
        error_path = str(save_volume(
            abs_error_hu(p.x[p.region], r, norm_std_hu=spec.norm_std_hu), error_file))
    return catalog_scores.ScoreRecord(
        run_id=options.run_id, scan_id=row.scan_id, split=row.split, mse=s.mse,
        mse_region=s.mse_region, mse_m=s.mse_m, max_error_zyx=max_zyx,  # type: ignore[arg-type]
        error_fraction=s.error_fraction, recon_path=recon_path, error_path=error_path,
        latent=latent.tolist(),
    )


def _score_batch(
    rows: list[Any], model: Any, spec: Any, options: ScoreOptions, device: str, run_dir: Path
) -> tuple[list[catalog_scores.ScoreRecord], dict[str, str]]:
    """Score a batch; returns its records and {scan_id: error message} for scans that failed.

    A scan that cannot be read or prepared fails alone. Inputs of one padded shape go through
    the model together (fully convolutional runs pad Z per scan, so shapes may differ).
    """
    failures: dict[str, str] = {}
    by_shape: dict[tuple[int, ...], list[tuple[Any, Any]]] = {}
    for row in rows:
        try:
            prepared = _prepare(row, spec)
        except Exception as err:  # a bad scan is recorded, the job goes on
            failures[row.scan_id] = _describe(err, "preparing the input")
            continue
        by_shape.setdefault(prepared.x.shape, []).append((row, prepared))
    records: list[catalog_scores.ScoreRecord] = []
    for group in by_shape.values():
        more, failed = _score_group(group, model, spec, options, device, run_dir)
        records += more
        failures.update(failed)
    return records, failures


def _score_group(
    ready: list[tuple[Any, Any]], model: Any, spec: Any, options: ScoreOptions, device: str,
    run_dir: Path,
) -> tuple[list[catalog_scores.ScoreRecord], dict[str, str]]:
    """Forward same-shape inputs together and score them; if the batched pass fails, retry
    one scan at a time so that only the culprit fails."""
    failures: dict[str, str] = {}
    try:
        recons, latents = _forward(model, [p.x for _, p in ready], device,
                                   options.channels_last)
    except Exception as err:
        if len(ready) == 1:
            return [], {ready[0][0].scan_id: _describe(err, "the forward pass")}
        logger.warning("batch forward failed (%s); retrying its %d scans one by one", err, len(ready))
        records: list[catalog_scores.ScoreRecord] = []
        for item in ready:
            more, failed = _score_group([item], model, spec, options, device, run_dir)
            records += more
            failures.update(failed)
        return records, failures
    records = []
    for (row, prepared), recon, latent in zip(ready, recons, latents, strict=True):
        try:
            records.append(_record(row, prepared, recon, latent, spec, options, run_dir))
        except Exception as err:
            failures[row.scan_id] = _describe(err, "scoring")
    return records, failures


def _describe(err: Exception, stage: str) -> str:
    return f"{type(err).__name__} while {stage}: {err}"


def score_scans(
    settings: CatalogSettings, options: ScoreOptions, run: dict[str, Any], todo: Any
) -> dict[str, int]:
    """Reconstruct and score the listed scans batch by batch on the chosen executor; the driver
    writes the results every ``FLUSH_RECORDS`` scans or ``FLUSH_SECONDS``."""
    from tqdm import tqdm

    from jobs.executors import map_stateful
    from jobs.score_workers import BatchScorer, scan_rows, threads_per_worker

    config = options.executor_config()
    rows = scan_rows(todo)
    batches = [rows[i:i + options.batch_size] for i in range(0, len(rows), options.batch_size)]
    threads = threads_per_worker(config.local_workers) if config.kind == "local" else None
    scorer = BatchScorer(run["checkpoint_path"], options, settings.run_dir(options.run_id), threads)
    counts = {"scored": 0, "failed": 0, "to_score": len(rows)}
    logger.info("run=%s scoring %d scans, batch %d, executor %s", options.run_id, len(rows),
                options.batch_size, config.kind)
    pending: tuple[list, dict[str, str]] = ([], {})
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
    return counts


def _write_batch(
    settings: CatalogSettings, run_id: str, records: list, failures: dict[str, str],
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
    p_value: Annotated[float, typer.Option("--p", help="Null probability for --rule pvalue: how rarely an inlier's strongest evidence reaches T.")] = 0.001,
    score_name: Annotated[str, typer.Option("--score", help="Score T applies to: outlier_score (the strongest of eight calibrated kinds of evidence) | mse_m (the thesis) | mse | mse_region.")] = "outlier_score",
    keep_volumes: Annotated[str, typer.Option(help="Store recon/|error| volumes for: all | flagged | none.")] = "all",
    error_level: Annotated[float, typer.Option("--error-level", help="|error| in HU that counts a body voxel in error_fraction.")] = 200.0,
    batch_size: Annotated[int, typer.Option(help="Scans per forward pass.")] = 4,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda | cuda:N.")] = "auto",
    rethreshold_only: Annotated[bool, typer.Option("--rethreshold-only", help="Only refit T with this rule and re-flag; no model.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Re-score scans the run already scored.")] = False,
    executor: ExecutorOption = "local",
    workers: Annotated[int | None, typer.Option("--workers", help="local: scoring processes (default 1, which uses every core); ray: actors (default one per GPU, else per CPU).")] = None,
    ray_address: RayAddressOption = None,
    no_progress: NoProgressOption = False,
) -> None:
    """Reconstruct every scan, store MSE / MSE_m / latents / error volumes, set T and flag."""
    settings = settings_from(catalog, store)
    executor_from(executor, ray_address, workers)  # usage errors before any work
    try:
        options = ScoreOptions(
            run_id=run, rule=ThresholdRule(rule or default_rule(score_name), k, percentile, p_value),
            score=score_name,
            keep_volumes=keep_volumes, error_level_hu=error_level, batch_size=batch_size,
            device=device, overwrite=overwrite, show_progress=not no_progress,
            executor=executor, workers=workers, ray_address=ray_address,
        )
        counts = rethreshold(settings, options) if rethreshold_only else run_score(settings, options)
    except (ScoreJobError, ValueError, RuntimeError) as err:  # RuntimeError: Ray missing
        typer.secho(f"ctae score: {err}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from err
    threshold = counts.get("threshold")
    t_text = "not set (too few validation scores)" if threshold is None else f"{threshold:.5f}"
    typer.echo(
        f"run {run}: scored {counts.get('scored', 0)}, failed {counts.get('failed', 0)}, "
        f"T = {t_text} ({options.rule.describe()}, on {options.score}; n_val = "
        f"{counts.get('n_val', 0)}), flagged {counts.get('flagged', 0)}"
    )


def register(app: typer.Typer) -> None:
    """Add `ctae score` to the CLI."""
    app.command("score")(score)
