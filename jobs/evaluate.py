"""`ctae evaluate`: how well the run's scores find planted outliers, beside two baselines.

For the run's outlier score and each of its kinds of evidence (``ctae_core.outlier_score.
EVIDENCE``), MSE, MSE over the region, MSE_m, and the two baselines pixel statistics +
IsolationForest and HU histogram + Mahalanobis: AUROC and average precision (overall and per
outlier type), precision and recall at T, and the Spearman correlation with pixel count among
inliers; where the truth file names each scan's ``base`` (the volume it was made from), the
run's score per base (``evaluation_bases``). T is the run's stored T
for the run's threshold score; every other method gets T from its own validation-split scores
under the run's rule. Baselines are unsupervised and fitted on every scored scan, as an
IsolationForest is meant to be used (it cannot rank points outside the range it was fitted on).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd
import typer

from ctae_core.evaluation import INLIER, SizeBiasByBase, size_bias_by_base
from data_catalog import CatalogSettings, connect
from data_catalog import scores as catalog_scores
from data_catalog.filters import why_unflagged
from jobs.job_errors import NOT_READY, JobError, stop
from jobs.localisation import format_localisation, localisation_counts
from jobs.options import CatalogOption, NoProgressOption, settings_from
from jobs.runtime import job_run, stack_lists

logger = logging.getLogger(__name__)

TRUTH_COLUMNS = ("series_uid", "source_path", "truth")
AE_METHODS = ("mse", "mse_region", "mse_m", "local_error_hu")


class EvaluateJobError(JobError):
    """The truth file or the run cannot be evaluated."""


TRUTH_DELIMITERS = (",", ";", "\t")
"""Column separators a truth file may use: the header's most frequent one is taken (a
spreadsheet saves ';' where the decimal mark is a comma, and '\t' for text)."""


def read_truth(path: Path) -> pd.DataFrame:
    """The ground-truth CSV (docs/CONTRACTS.md): series_uid, source_path, truth[, strength];
    comma-, semicolon- or tab-separated, UTF-8 with or without a byte-order mark."""
    if path.is_dir():  # the cohort's folder given for its truth file
        inside = path / "ground_truth.csv"
        hint = f"pass {inside}" if inside.is_file() else "pass the cohort's ground_truth.csv"
        raise EvaluateJobError(f"{path}: a folder, not a ground-truth file; {hint}")
    if not path.is_file():
        raise EvaluateJobError(f"{path}: no such ground-truth file; pass the cohort's ground_truth.csv")
    try:
        with path.open(encoding="utf-8-sig") as handle:
            header = handle.readline()
        truth = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig",
                            sep=max(TRUTH_DELIMITERS, key=header.count))
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise EvaluateJobError(f"{path}: not a readable CSV file ({err}); save the truth as UTF-8 CSV "
                               "with the columns series_uid, source_path, truth") from err
    missing = [c for c in TRUTH_COLUMNS if c not in truth.columns]
    if missing:
        raise EvaluateJobError(
            f"{path}: missing column(s) {missing}; expected {', '.join(TRUTH_COLUMNS)}[, strength]"
        )
    truth["truth"] = truth["truth"].str.strip().str.lower()  # "Inlier", "Pacemaker" as typed by hand
    if (truth["truth"] == "").any():
        raise EvaluateJobError(f"{path}: {int((truth['truth'] == '').sum())} rows have an empty 'truth'")
    return truth


def refuse_one_sided(path: Path, labels: pd.Series) -> None:
    """Refuse matched truth labels that hold no inlier or no outlier: every figure would be
    undefined, and the empty evaluation would be stored as the run's."""
    inliers = int((labels == INLIER).sum())
    if 0 < inliers < len(labels):
        return
    values = ", ".join(f"{value!r} × {count}" for value, count in labels.value_counts().items())
    side = "no scan is an inlier" if inliers == 0 else "no scan is an outlier"
    raise EvaluateJobError(f"{path}: {side} among the {len(labels)} matched rows (truth: {values}); "
                           f"write '{INLIER}' for a normal scan and the anomaly's type (any other "
                           "word) for an outlier, with both among the scans evaluated")


def _norm_path(value: Any) -> str:
    return str(value).strip().replace("\\", "/").strip("/").removeprefix("./")


def match_truth(inputs: pd.DataFrame, truth: pd.DataFrame) -> pd.Series:
    """Truth label per row of ``inputs`` (None where unmatched): by series_uid, else source_path."""
    by_uid = {u: t for u, t in zip(truth["series_uid"], truth["truth"], strict=True) if u}
    by_path = {_norm_path(p): t for p, t in zip(truth["source_path"], truth["truth"], strict=True) if p}
    labels = []
    for uid, path in zip(inputs["series_uid"], inputs["source_path"], strict=True):
        label = by_uid.get(uid) if isinstance(uid, str) and uid else None
        labels.append(label if label is not None else by_path.get(_norm_path(path)))
    return pd.Series(labels, index=inputs.index, dtype=object)


def truth_column(inputs: pd.DataFrame, truth: pd.DataFrame, column: str) -> pd.Series | None:
    """The truth file's ``column`` (a scan's ``base``, its ``mask_path``) per row of ``inputs``,
    matched as ``match_truth`` matches labels; None when the file has no such column."""
    return match_truth(inputs, truth.assign(truth=truth[column])) if column in truth else None


def baseline_scores(inputs: pd.DataFrame, fit_rows: np.ndarray, seed: int = 0) -> dict[str, np.ndarray]:
    """Scores of the two baselines per scan; a baseline whose inputs are missing is left out."""
    from ctae_core.evaluation import (
        histogram_features,
        isolation_forest_scores,
        mahalanobis_scores,
        pixel_stat_features,
    )

    out: dict[str, np.ndarray] = {}
    stats = {c: inputs[c].to_numpy(dtype=np.float64, na_value=np.nan)
             for c in ("pixel_count", "hu_mean", "hu_std", "hu_min", "hu_max", "hu_p1",
                       "hu_p99", "body_voxels", "metal_voxels")}
    out["isolation_forest"] = isolation_forest_scores(pixel_stat_features(stats), fit_rows, seed=seed)
    histograms = stack_lists(inputs["hu_histogram"])
    if histograms is None:
        logger.warning("histogram baseline skipped: %d scans lack an HU histogram (re-ingest them)",
                       int(inputs["hu_histogram"].isna().sum()))
        return out
    out["histogram_mahalanobis"] = mahalanobis_scores(histogram_features(histograms), fit_rows)
    return out


def _threshold_params(run: dict[str, Any]) -> dict[str, Any]:
    """The run's stored threshold rule and its parameters (``runs.threshold_params_json``)."""
    return json.loads(run["threshold_params_json"]) if run.get("threshold_params_json") else {}


def _method_threshold(method: str, values: np.ndarray, splits: np.ndarray, run: dict[str, Any]) -> float | None:
    """The run's T for its threshold score; else T from this method's validation scores under
    the run's rule — or under mean + 3·std where the run's rule is the outlier score's p-value,
    which means nothing for another score."""
    from ctae_core.thresholds import ThresholdRule

    if method == run.get("threshold_score") and run.get("threshold") is not None:
        return float(run["threshold"])
    params = _threshold_params(run)
    rule = ThresholdRule.from_dict(params)
    if rule.rule == "pvalue" and method != "outlier_score":
        rule = ThresholdRule()
    val = values[splits == "val"]
    if np.isfinite(val).sum() < 2:
        return None
    return rule.threshold(val)


def evaluate_run(inputs: pd.DataFrame, labels: pd.Series, run: dict[str, Any],
                 show_progress: bool = False) -> list[dict[str, Any]]:
    """Every method's rows (``EvaluationRow.to_dict()``) on the scans with a truth label."""
    from tqdm import tqdm

    from ctae_core.evaluation import evaluate_method
    from ctae_core.outlier_score import EVIDENCE  # scipy.stats: not at CLI start-up

    fit_rows = np.ones(len(inputs), dtype=bool)
    # the run's own scores in the scores table; a method whose column is all NULL is left out
    run_methods = ("outlier_score", *EVIDENCE, *AE_METHODS)
    methods = {m: inputs[m].to_numpy(dtype=np.float64, na_value=np.nan) for m in run_methods
               if inputs[m].notna().any()}
    methods.update(baseline_scores(inputs, fit_rows))
    known = labels.notna().to_numpy()
    splits = inputs["split"].to_numpy()
    truth = labels[known].to_numpy(dtype=object)
    pixels = inputs["pixel_count"].to_numpy(dtype=np.float64)[known]
    rows: list[dict[str, Any]] = []
    for method, values in tqdm(methods.items(), desc="evaluate", disable=not show_progress):
        threshold = _method_threshold(method, values, splits, run)
        rows += [r.to_dict() for r in evaluate_method(
            method, values[known], truth, threshold=threshold, pixel_count=pixels)]
    return rows


def run_evaluate(settings: CatalogSettings, run_id: str, truth_path: Path,
                 splits: list[str] | None = None, show_progress: bool = False) -> pd.DataFrame:
    """Evaluate the run against ``truth_path``, store the rows, return them as a table."""
    truth = read_truth(truth_path)
    with connect(settings.catalog_path) as con:
        run = catalog_scores.read_run(con, run_id)
        inputs = catalog_scores.evaluation_inputs(con, run_id)
        known = catalog_scores.run_ids(con)
    if run is None:
        raise EvaluateJobError(f"run {run_id!r} is not in {settings.catalog_path}; known runs: "
                               f"{', '.join(known) or 'none'}")
    if inputs.empty:
        raise EvaluateJobError(f"run {run_id!r} has no scores in {settings.catalog_path}; "
                               f"run `ctae score --run {run_id}` first", exit_code=NOT_READY)
    unset = int(inputs["is_outlier"].isna().sum())
    if unset and run.get("threshold") is not None:  # a scoring rewriting the run's scores
        raise EvaluateJobError(
            f"{unset} of the {len(inputs)} scored scans of run {run_id!r} have no flag yet: "
            f"{why_unflagged(run_id)}; until then its scores are part old, part new",
            exit_code=NOT_READY)
    labels = match_truth(inputs, truth)
    if splits:
        present = sorted(set(inputs["split"].dropna()))
        if unknown := sorted(set(splits) - set(present)):
            raise EvaluateJobError(f"no scored scan of run {run_id!r} is in split(s) {unknown}; "
                                   f"its splits: {', '.join(present)}")
        labels[~inputs["split"].isin(splits)] = None
    n_known = int(labels.notna().sum())
    if n_known == 0:
        raise EvaluateJobError(f"{truth_path}: no row matches a scored scan of run {run_id!r} by "
                               "series_uid or source_path; is it the truth file of this cohort?")
    refuse_one_sided(truth_path, labels.dropna())
    args = {"run_id": run_id, "truth": str(truth_path), "splits": splits}
    with job_run(settings, "evaluate", args) as counts:
        rows = evaluate_run(inputs, labels, run, show_progress)
        bases = truth_column(inputs, truth, "base")
        by_base = base_rows(inputs, labels, bases, run) if bases is not None else []
        with connect(settings.catalog_path) as con:
            catalog_scores.write_evaluations(con, run_id, rows, str(truth_path.resolve()))
            catalog_scores.write_evaluation_bases(con, run_id, by_base, str(truth_path.resolve()))
        counts.update(matched=n_known, scored=len(inputs), unmatched_truth=len(truth) - n_known,
                      rows=len(rows), base_rows=len(by_base))
        located = localisation_counts(inputs, truth_column(inputs, truth, "mask_path"),
                                      truth_path.parent, run)
        counts.update(located)
        other_p = other_p_rows(inputs, labels, run)
    logger.info("run=%s evaluated %d of %d scored scans against %s", run_id, n_known,
                len(inputs), truth_path)
    table = pd.DataFrame(rows)
    table.attrs["localisation"] = located
    table.attrs["other_p"] = other_p
    table.attrs["by_base"] = by_base
    table.attrs["size_by_base"] = size_bias_of_bases(inputs, labels, bases, run) if bases is not None else None
    return table


def run_score_name(run: dict[str, Any] | None) -> str:
    """The score a run flags by (``threshold_score``); MSE_m for a run not yet thresholded."""
    return (run or {}).get("threshold_score") or "mse_m"


def base_rows(inputs: pd.DataFrame, labels: pd.Series, bases: pd.Series,
              run: dict[str, Any]) -> list[dict[str, Any]]:
    """The run's own score per base named by the truth file (``evaluate_by_base``; a
    real-anatomy cohort's ``ctae demo-data --base real`` writes it), at the run's T; empty
    unless the scans with a label name two bases or more. Stored (``evaluation_bases``) and
    printed."""
    from dataclasses import asdict

    from ctae_core.evaluation import evaluate_by_base

    known = labels.notna().to_numpy()
    named = bases[known].fillna("")
    if named[named != ""].nunique() < 2:
        return []
    method = run_score_name(run)
    values = inputs[method].to_numpy(dtype=np.float64, na_value=np.nan)
    threshold = _method_threshold(method, values, inputs["split"].to_numpy(), run)
    return [asdict(r) for r in evaluate_by_base(values[known], labels[known].to_numpy(dtype=object),
                                                  named.to_numpy(dtype=object), threshold=threshold)]


def size_bias_of_bases(inputs: pd.DataFrame, labels: pd.Series, bases: pd.Series,
                       run: dict[str, Any]) -> SizeBiasByBase | None:
    """The run score's size bias taken apart by the truth file's bases (``size_bias_by_base``);
    printed, not stored."""
    known = labels.notna().to_numpy()
    values = inputs[run_score_name(run)].to_numpy(dtype=np.float64, na_value=np.nan)
    return size_bias_by_base(values[known], inputs["pixel_count"].to_numpy(dtype=np.float64)[known],
                             labels[known].to_numpy(dtype=object),
                             bases[known].fillna("").to_numpy(dtype=object))


def format_size_by_base(parts: SizeBiasByBase | None) -> str:
    """``size_bias_of_bases`` as one line; empty without two bases of enough inliers."""
    if parts is None:
        return ""
    return (f"taken apart by the truth file's {parts.n_bases} bases: within each base {parts.within:+.3f} "
            f"(weighted by its inliers); the bases' median scores against their median sizes "
            f"{parts.between:+.3f}; each score less its base's median {parts.centred:+.3f}")


def format_by_base(rows: list[dict[str, Any]], run_score: str) -> str:
    """The run score per base (``base_rows``); empty when there are none."""
    if not rows:
        return ""
    table = pd.DataFrame(rows)
    return (f"\nper base of the truth file, the run's score ({run_score}; within: against the base's "
            "own inliers, cohort: against every inlier):\n"
            + table.to_string(index=False, na_rep="—", float_format=lambda v: f"{v:.3f}"))


OTHER_P = (0.001, 0.003, 0.005, 0.01)
"""The p-values at which ``ctae evaluate`` also shows the outlier score's flags."""


def other_p_rows(inputs: pd.DataFrame, labels: pd.Series, run: dict[str, Any]) -> list[dict[str, Any]]:
    """Precision, recall and inliers flagged by the outlier score at each of ``OTHER_P`` and the
    run's own p (what ``ctae score --p`` would give, from the stored scores; ``"p"`` names each
    row, the run's own marked); empty unless the run flags by the outlier score's p-value."""
    from ctae_core.evaluation import operating_points
    from ctae_core.thresholds import ThresholdRule

    params = _threshold_params(run)
    rule = ThresholdRule.from_dict(params)
    if run.get("threshold_score") != "outlier_score" or rule.rule != "pvalue":
        return []
    known = labels.notna().to_numpy()
    scores = inputs["outlier_score"].to_numpy(dtype=np.float64, na_value=np.nan)[known]
    thresholds = {f"{p:g}" + (" (the run's)" if p == rule.p else ""):
                  ThresholdRule.from_dict({**params, "p": p}).threshold(np.zeros(2))
                  for p in sorted({*OTHER_P, rule.p})}
    return operating_points(labels[known].to_numpy() != "inlier", scores, thresholds)


def format_other_p(rows: list[dict[str, Any]]) -> str:
    """The outlier score's flags at other p (``other_p_rows``)."""
    if not rows:
        return ""
    table = pd.DataFrame(rows).rename(columns={"at": "p", "threshold": "T"})
    return ("\nthe outlier score at other p (`ctae score --p P`; the same stored scores):\n"
            + table.to_string(index=False, na_rep="—", float_format=lambda v: f"{v:.3f}"))


def format_table(table: pd.DataFrame, run_score: str, per_type: Sequence[str] = ()) -> str:
    """Printable blocks: every method on all planted outliers (best AUROC first), then each
    planted type for the run's own score and for each method of ``per_type`` (a kind of evidence,
    a reconstruction score, a baseline: which planted types it finds). Every row is stored in the
    catalog either way."""
    fmt = {"index": False, "na_rep": "—", "float_format": lambda v: f"{v:.3f}"}
    metrics = ["n_inliers", "n_outliers", "auroc", "average_precision", "precision_at_t",
               "recall_at_t", "false_alarm_rate", "spearman_pixel_count"]
    overall = table[table["outlier_type"] == "all"].sort_values("auroc", ascending=False)
    blocks = ["every method, all planted outliers:", overall[["method", *metrics]].to_string(**fmt)]
    shown = dict.fromkeys([run_score, *per_type])
    for method in shown:
        rows = table[(table["outlier_type"] != "all") & (table["method"] == method)]
        if len(rows):
            whose = f"the run's score ({method})" if method == run_score else method
            blocks += [f"\nper planted type, {whose}:",
                       rows.sort_values("outlier_type")[["outlier_type", *metrics]].to_string(**fmt)]
    return "\n".join(blocks)


def format_size_bias(table: pd.DataFrame, run_score: str) -> str:
    """The run score's Spearman ρ with pixel count among inliers, with its 95 % interval
    (``spearman_interval``); empty when it is undefined."""
    from ctae_core.evaluation import spearman_interval

    row = table[(table["outlier_type"] == "all") & (table["method"] == run_score)]
    if row.empty or not np.isfinite(row["spearman_pixel_count"].iloc[0]):
        return ""
    rho, n = float(row["spearman_pixel_count"].iloc[0]), int(row["n_inliers"].iloc[0])
    low, high = spearman_interval(rho, n)
    _, none_high = spearman_interval(0.0, n)
    return (f"\nsize bias of {run_score}: Spearman rho with pixel count over {n} inliers {rho:+.3f} "
            f"(95 % interval {low:+.3f} to {high:+.3f}; a score without any size bias lands within "
            f"±{none_high:.3f} of 0 on 95 % of cohorts this size)")


SIDE_BY_SIDE = {"auroc": "AUROC", "precision_at_t": "P@T", "recall_at_t": "R@T",
                "false_alarm_rate": "FA", "spearman_pixel_count": "rho"}


def format_side_by_side(cohorts: dict[str, pd.DataFrame], run_score: str) -> str:
    """Each method's overall metrics on every cohort (named by the keys) side by side, then the
    run score's per-type AUROC / recall at T on each."""
    fmt = {"na_rep": "—", "float_format": lambda v: f"{v:.3f}"}
    overall = []
    for name, table in cohorts.items():
        rows = table[table["outlier_type"] == "all"].set_index("method").reindex(columns=list(SIDE_BY_SIDE))
        overall.append(rows.rename(columns=lambda c, n=name: f"{n} {SIDE_BY_SIDE[c]}"))
    joined = pd.concat(overall, axis=1)
    first = f"{next(iter(cohorts))} AUROC"
    joined = joined.sort_values(first, ascending=False)
    per_type = []
    for name, table in cohorts.items():
        rows = table[(table["outlier_type"] != "all") & (table["method"] == run_score)]
        per_type.append(rows.set_index("outlier_type")[["auroc", "recall_at_t", "n_outliers"]]
                        .rename(columns=lambda c, n=name: f"{n} {c}"))
    blocks = ["every method, all outliers, per cohort:", joined.to_string(**fmt)]
    types = pd.concat(per_type, axis=1)
    if len(types):
        blocks += [f"\nper outlier type, the run's score ({run_score}):", types.to_string(**fmt)]
    return "\n".join(blocks)


def evaluate(
    run: Annotated[str, typer.Option("--run", help="The scored run to evaluate.")],
    truth: Annotated[Path, typer.Option("--truth", help="ground_truth.csv: series_uid,source_path,truth,strength.")],
    catalog: CatalogOption = None,
    split: Annotated[list[str] | None, typer.Option("--split", help="Evaluate only scans of this split (repeatable); default all scored scans.")] = None,
    beside: Annotated[str | None, typer.Option("--beside", help="Also print this run's evaluation beside another evaluated run's (e.g. the phantom cohort's beside the real-anatomy cohort's).")] = None,
    beside_catalog: Annotated[Path | None, typer.Option("--beside-catalog", help="The catalog of the --beside run (default: --catalog).")] = None,
    per_type: Annotated[list[str] | None, typer.Option("--per-type", help="Also print this method's AUROC, precision and recall per planted type (repeatable): a kind of evidence (e.g. local_error_z), a reconstruction score (mse_m) or a baseline (isolation_forest).")] = None,
    no_progress: NoProgressOption = False,
) -> None:
    """AUROC / AP / precision, recall and false alarms at T / size bias, beside two baselines.

    With --beside, side by side with another cohort's run."""
    settings = settings_from(catalog, follow_store=True, existing=True)
    try:
        table = run_evaluate(settings, run, truth, split or None, not no_progress)
    except (EvaluateJobError, ValueError) as err:
        raise stop("evaluate", err) from err
    known = sorted(set(table["method"]))
    if missing := [m for m in per_type or [] if m not in known]:  # a kind the run lacks, a typo
        raise stop("evaluate", EvaluateJobError(
            f"--per-type {', '.join(missing)}: run {run!r} has no such method (its evaluation is "
            f"stored all the same); choose from {', '.join(known)}"))
    with connect(settings.catalog_path, read_only=True) as con:
        run_score = run_score_name(catalog_scores.read_run(con, run))
    typer.echo(format_table(table, run_score, per_type or ()))
    if by_base := format_by_base(table.attrs.get("by_base", []), run_score):
        typer.echo(by_base)
    if other := format_other_p(table.attrs.get("other_p", [])):
        typer.echo(other)
    if bias := format_size_bias(table, run_score):
        typer.echo(bias)
        if parts := format_size_by_base(table.attrs.get("size_by_base")):
            typer.echo(parts)
    typer.echo(format_localisation(table.attrs.get("localisation", {})))
    if beside:
        other_catalog = beside_catalog or settings.catalog_path
        with connect(other_catalog, read_only=True) as con:
            other = catalog_scores.read_evaluations(con, beside)
        if other.empty:
            raise stop("evaluate", EvaluateJobError(
                f"run {beside!r} has no evaluation in {other_catalog}; run "
                f"`ctae evaluate --run {beside} --truth ...` there first", exit_code=NOT_READY))
        label = beside if beside != run or beside_catalog else f"{beside} (stored)"
        typer.echo("\n" + format_side_by_side({run: table, label: other}, run_score))


def register(app: typer.Typer) -> None:
    """Add `ctae evaluate` to the CLI."""
    app.command("evaluate")(evaluate)
