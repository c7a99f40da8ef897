"""Overview: dataset size, ingest errors, runs, training curve, threshold, review counts."""

from __future__ import annotations

import json

import streamlit as st

from ctae_core.agreement import run_agreement
from ctae_core.io.processes import process_state
from ctae_core.thresholds import ThresholdRule
from dashboard import data, echarts, state
from data_catalog.filters import why_unflagged
from data_catalog.job_runs import how_to_go_on
from data_catalog.status import next_steps


def epoch_ranges(epochs: list[int]) -> str:
    """Sorted epoch numbers in words by runs: [1, 2, 3, 7] -> "Epochs 1–3 and 7 were"."""
    runs: list[list[int]] = []
    for epoch in sorted(epochs):
        if runs and epoch == runs[-1][-1] + 1:
            runs[-1].append(epoch)
        else:
            runs.append([epoch])
    parts = [f"{r[0]}–{r[-1]}" if len(r) > 1 else str(r[0]) for r in runs]
    words = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return f"Epoch {words} was" if len(epochs) == 1 else f"Epochs {words} were"


def compare_runs(catalog: str, run_a: str, run_b: str) -> None:
    """The two runs' flags cross-counted over the scans both flagged, their scores' rank
    correlation, and the scans one run flags and the other does not."""
    columns = ["scan_id", "score", "is_outlier"]
    a = data.scan_table(catalog, run_a)[[*columns, "label", "source_path"]]
    b = data.scan_table(catalog, run_b)[columns]
    both = a.merge(b, on="scan_id", suffixes=("_a", "_b"))
    both = both.dropna(subset=["score_a", "score_b", "is_outlier_a", "is_outlier_b"])
    if both.empty:
        st.caption(f"No scan has a score and a flag from both `{run_a}` and `{run_b}`.")
        return
    agree = run_agreement(both["is_outlier_a"], both["is_outlier_b"], both["score_a"],
                          both["score_b"])
    cols = st.columns(5)
    cols[0].metric("Flagged by both", agree.both)
    cols[1].metric(f"Only by {run_a}", agree.only_a)
    cols[2].metric(f"Only by {run_b}", agree.only_b)
    cols[3].metric("Cohen's κ of the flags", "—" if agree.kappa != agree.kappa else f"{agree.kappa:.2f}")
    cols[4].metric("Spearman ρ of the scores",
                   "—" if agree.spearman != agree.spearman else f"{agree.spearman:.2f}")
    st.caption(f"Over the {agree.scans:,} scans both runs scored and flagged, each at its own T "
               f"on its own score ({agree.neither:,} flagged by neither).")
    differ = both[both["is_outlier_a"].astype(bool) != both["is_outlier_b"].astype(bool)]
    if len(differ):
        shown = differ.rename(columns={
            "score_a": f"score ({run_a})", "score_b": f"score ({run_b})",
            "is_outlier_a": f"flagged by {run_a}", "is_outlier_b": f"flagged by {run_b}"})
        if not state.is_admin():
            shown = shown.drop(columns="source_path")
        st.dataframe(shown, hide_index=True, width="stretch", key="compare_table")


st.title("Overview")
catalog = state.catalog()
if data.catalog_exists(catalog):
    state.explain_refusals_without_scans()
state.require_scans()
counts = data.catalog_counts(catalog)

left, mid, right = st.columns(3)
left.metric("Scans", f"{counts['scans']:,}")
mid.metric("Ingest errors", f"{counts['ingest_errors']:,}")
right.metric("Runs", counts["runs"])

errors = data.ingest_errors(catalog)
if len(errors):
    with st.expander(f"Ingest errors ({len(errors)}) by reason"):
        st.dataframe(errors.groupby("reason").size().rename("inputs"), width="content")
        shown = errors if state.is_admin() else errors.drop(columns=["source_root", "source_path"])
        st.dataframe(shown, hide_index=True, width="stretch")

copies = data.duplicate_scans(catalog)
if len(copies):
    groups = copies["content_hash"].nunique()
    with st.expander(f"Scans with the same voxels as another ({len(copies)} in {groups} groups)"):
        st.caption("One series stored twice, under two places or names: each copy is a scan of "
                   "its own, trained on, scored, reviewed and exported as such. `ctae remove "
                   "--copies` takes all but the first of each out of the catalog; the export "
                   "page's \"One scan per copy\" leaves them out of a list.")
        shown = copies.assign(group=copies["content_hash"].str[:12]).drop(columns="content_hash")
        if not state.is_admin():
            shown = shown.drop(columns=["source_root", "source_path"])
        st.dataframe(shown[["group", *[c for c in shown.columns if c != "group"]]],
                     hide_index=True, width="stretch")

removed = data.removed_scans(catalog)
if len(removed):
    with st.expander(f"Scans removed from the catalog ({len(removed)})"):
        st.caption("Taken out by `ctae remove` with every run's rows and stored files; their "
                   "labels, review sessions and export snapshots are kept.")
        shown = removed if state.is_admin() else removed.drop(columns=["source_root", "source_path"])
        st.dataframe(shown, hide_index=True, width="stretch")

run_id = state.require_run()
st.subheader("Runs")
st.dataframe(data.run_table(catalog), hide_index=True, width="stretch")
jobs = data.job_table(catalog)
gone, running = [], []
for job in data.running_jobs(catalog):
    on = f" on run `{job.run_id}`" if job.run_id else ""
    process = f"pid {job.process.pid} on {job.process.host}"
    now = process_state(job.process)
    running.append({"job": job.job, "run_id": job.run_id, "process": now})
    if now == "gone":
        gone.append((job.process.host, job.process.pid))
        st.warning(f"`ctae {job.job}`{on}, started {job.started_at} ({process}), has stopped "
                   "without recording its end: it was killed, or its machine restarted. What it "
                   f"wrote is kept: {how_to_go_on(job.job, job.run_id)} (the next job on this "
                   "catalog marks this one interrupted).")
    else:
        unchecked = (" This dashboard runs on another machine and cannot check that it still "
                     "runs: `ctae status` on that machine can." if now == "not checked" else "")
        st.info(f"`ctae {job.job}`{on} is running since {job.started_at} ({process}): what it "
                f"writes shows here as it goes.{unchecked}")
steps = next_steps({**data.catalog_summary(catalog), "running": running}, done=False)
if steps:
    st.markdown("**Next** (as `ctae status` prints it):\n" + "\n".join(f"- {step}" for step in steps))
if len(jobs):
    if gone:
        jobs = jobs.assign(status=[
            "gone" if status == "running" and (host, pid) in gone else status
            for status, host, pid in zip(jobs["status"], jobs["host"], jobs["pid"], strict=True)])
    with st.expander(f"Recent jobs ({len(jobs)})"):
        st.dataframe(jobs, hide_index=True, width="stretch")

run = data.run_info(catalog, run_id) or {}
st.subheader(f"Run `{run_id}`")
if run.get("threshold") is None:
    st.info(f"Run `{run_id}` has no threshold yet: run `ctae score --run {run_id}`.")
else:
    params = json.loads(run.get("threshold_params_json") or "{}")
    st.markdown(
        f"Threshold rule **{run['threshold_rule']}** "
        f"({ThresholdRule.from_dict(params).describe()}, n_val = {params.get('n_val', '?')}) "
        f"on **{run['threshold_score']}**: T = **{run['threshold']:.4g}**  ·  "
        f"model input spacing {run.get('spacing_mm')} mm"
    )
summary = data.review_summary(catalog, run_id)
if summary["unflagged"]:
    st.warning(f"{summary['unflagged']:,} scored scans of run `{run_id}` have no flag yet: "
               f"{why_unflagged(run_id)}. The flagged count below leaves them out, and a clean "
               "list is not exported until they have one.")
cols = st.columns(4)
cols[0].metric("Flagged (> T)", f"{summary['flagged']:,}")
cols[1].metric(
    "Reviewed scans",
    f"{summary['reviewed']:,}",
    f"{summary['flagged_reviewed']:,} of the flagged",
    delta_color="off",
)
cols[2].metric("Labelled outliers", f"{summary['labelled_outliers']:,}")
cols[3].metric("Disagreements", f"{summary['disagreements']:,}")

others = [r for r in data.run_table(catalog)["run_id"] if r != run_id]
if others:
    with st.expander("Compare with another run"):
        # read on demand: the page reads no scan table otherwise (100k scans: ~1 s a run)
        other = st.selectbox("Run", others, index=None, placeholder="choose a run to compare",
                             key="ov_compare")
        if other is not None:
            compare_runs(catalog, run_id, other)

history = data.train_curve(catalog, run_id)
if len(history):
    st.echarts_chart(  # ECharts: a Plotly chart would make the browser load Plotly's 4.7 MB
        echarts.training_curve(history), key="training_curve", height=300,
        alt=f"Training and validation loss over {len(history)} epochs",
    )
    unvalidated = history.loc[history["val_loss"].isna(), "epoch"].astype(int).tolist()
    if unvalidated:
        st.caption(f"{epoch_ranges(unvalidated)} not validated (`ctae train --validate-from`: "
                   "the run validates from a share of its schedule on, a resumed run from its "
                   "own); the weights kept are the best validated epoch's.")
else:
    st.caption("No training history recorded for this run.")

evaluation = data.evaluations(catalog, run_id)
if len(evaluation):
    st.subheader("Evaluation against ground truth")
    overall = evaluation[evaluation["outlier_type"] == "all"].sort_values("auroc", ascending=False)
    st.caption("Every method on all planted outliers, best AUROC first.")
    st.dataframe(overall.drop(columns="outlier_type"), hide_index=True, width="stretch")
    own = run.get("threshold_score") or "mse_m"
    per_type = evaluation[(evaluation["method"] == own) & (evaluation["outlier_type"] != "all")]
    if len(per_type):
        st.caption(f"Per planted type, for the run's score **{own}** (recall at T = share found).")
        st.dataframe(per_type.drop(columns="method"), hide_index=True, width="stretch")
    bases = data.evaluation_bases(catalog, run_id)
    if len(bases):
        st.caption(f"Per base of the truth file (the volume each scan was made from), for **{own}**: "
                   "AUROC of the base's outliers against its own inliers (*within*) and against "
                   "every inlier (*cohort*), and the base's inliers flagged.")
        st.dataframe(bases, hide_index=True, width="stretch")
    with st.expander("Every method per type"):
        st.caption("AUROC of each method (best on all planted outliers first) on each planted "
                   "type: which kind of evidence, reconstruction score or baseline finds which.")
        auroc = evaluation.pivot(index="method", columns="outlier_type", values="auroc")
        types = ["all", *sorted(t for t in auroc.columns if t != "all")]
        st.dataframe(auroc.loc[overall["method"], types], width="stretch")
        st.dataframe(evaluation, hide_index=True, width="stretch")
else:
    st.caption(f"No evaluation yet: `ctae evaluate --run {run_id} --truth ground_truth.csv`.")
