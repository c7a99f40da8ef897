"""Catalog reads, label/export writes and the shared export filter, on real DuckDB files."""

from __future__ import annotations

import time

import pandas as pd
import pytest

from data_catalog import connect, views
from data_catalog.filters import ExportFilter, apply_filter, filter_mask, render_export
from data_catalog.review import add_label, log_export
from tests.dashboard.conftest import build


def test_current_label_is_the_newest_per_reviewer(catalog):
    with connect(catalog.catalog_path) as con:
        add_label(
            con,
            scan_id="syn0000010",
            reviewer="eve",
            verdict="outlier",
            causes=["anatomy"],
            note="first look",
        )
        time.sleep(0.002)
        add_label(con, scan_id="syn0000010", reviewer="eve", verdict="inlier")
        add_label(con, scan_id="syn0000010", reviewer="finn", verdict="unsure")
    with connect(catalog.catalog_path, read_only=True) as con:
        row = views.scan_table(con, "synthetic").set_index("scan_id").loc["syn0000010"]
        lean = views.explorer_scans(con, "synthetic").set_index("scan_id").loc["syn0000010"]
        history = views.label_history(con, "syn0000010")
        disagree = views.disagreements(con, "synthetic")
        progress = views.reviewer_progress(con, "synthetic").set_index("reviewer")
    assert (row["label"], row["labelled_by"], row["n_reviewers"], row["disagree"]) == (
        "unsure",
        "finn",
        2,
        True,
    )
    assert lean["label"] == "unsure" and lean["causes"] == row["causes"]
    assert list(history["verdict"]) == ["unsure", "inlier", "outlier"]
    assert "eve: inlier, finn: unsure" in set(disagree["verdicts"])
    assert progress.loc["eve", "scans_labelled"] == 1 and progress.loc["eve", "inlier"] == 1


@pytest.mark.parametrize("all_clusters", [False, True])
def test_explorer_scans_match_the_scan_table(catalog, all_clusters):
    with connect(catalog.catalog_path, read_only=True) as con:
        full = views.scan_table(con, "synthetic").set_index("scan_id")
        lean = views.explorer_scans(con, "synthetic", all_clusters=all_clusters)
    lean = lean.set_index("scan_id").sort_index()
    scored = full[full["mse_m"].notna()].sort_index()
    assert list(lean.index) == list(scored.index)
    assert "source_path" not in lean and "series_uid" not in lean
    flagged = scored["is_outlier"].astype(bool)
    shared = [c for c in lean.columns if c != "cluster"]
    pd.testing.assert_frame_equal(lean[shared], scored[shared], check_dtype=False)
    clusters = scored["cluster"] if all_clusters else scored["cluster"].where(flagged)
    assert lean["cluster"].astype("Float64").equals(clusters.astype("Float64"))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"verdict": "maybe"}, "verdict 'maybe'"),
        ({"causes": ["alien"]}, "cause tags"),
        ({"reviewer": " "}, "reviewer name is empty"),
        ({"scan_id": "nope"}, "scan 'nope' is not in the catalog"),
    ],
)
def test_bad_labels_are_refused(catalog, kwargs, message):
    label = {"scan_id": "syn0000010", "reviewer": "eve", "verdict": "inlier", **kwargs}
    with connect(catalog.catalog_path) as con, pytest.raises(ValueError, match=message):
        add_label(con, **label)


def test_filter_semantics_on_the_scan_table(catalog):
    with connect(catalog.catalog_path, read_only=True) as con:
        scans = views.scan_table(con, "synthetic")
    flagged = scans["is_outlier"].astype(bool)
    assert filter_mask(scans, ExportFilter()).all()
    assert filter_mask(scans, ExportFilter(flag="outlier")).sum() == flagged.sum()
    clean = apply_filter(scans, ExportFilter(exclude_outliers=True))
    assert not set(clean["scan_id"]) & set(
        scans.loc[flagged & (scans["label"] != "inlier"), "scan_id"]
    )
    assert (clean["label"] != "outlier").all()
    t = scans["score"].median()
    assert (apply_filter(scans, ExportFilter(score_min=t))["score"] >= t).all()
    metal = apply_filter(scans, ExportFilter(cause=("metal implant",)))
    assert len(metal) and metal["causes"].str.contains("metal implant").all()
    unlabeled = apply_filter(scans, ExportFilter(label=("unlabeled",), split=("test",)))
    assert unlabeled["label"].isna().all() and (unlabeled["split"] == "test").all()
    assert len(unlabeled) == (scans["label"].isna() & (scans["split"] == "test")).sum()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"split": ("dev",)}, "split"),
        ({"flag": "odd"}, "flag 'odd'"),
        ({"score_min": 2.0, "score_max": 1.0}, "score range is empty"),
    ],
)
def test_bad_filters_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ExportFilter(**kwargs)


def test_render_export_formats(tmp_path):
    rows = pd.DataFrame(
        {"source_root": ["/d/", "/d"], "source_path": ["a/1", "b/2"], "scan_id": ["x", "y"]}
    )
    assert render_export(rows, "txt") == b"/d/a/1\n/d/b/2\n"
    (tmp_path / "r.csv").write_bytes(render_export(rows, "csv"))
    assert pd.read_csv(tmp_path / "r.csv").equals(rows)
    (tmp_path / "r.parquet").write_bytes(render_export(rows, "parquet"))
    assert pd.read_parquet(tmp_path / "r.parquet").equals(rows)
    with pytest.raises(ValueError, match="export format 'xls'"):
        render_export(rows, "xls")


def test_export_log_and_counts(catalog):
    with connect(catalog.catalog_path) as con:
        log_export(
            con,
            who="gus",
            run_id="synthetic",
            filter_json="{}",
            row_count=5,
            fmt="txt",
            destination="/tmp/x.txt",
        )
    with connect(catalog.catalog_path, read_only=True) as con:
        log = views.export_log(con)
        counts = views.catalog_counts(con)
        hist = views.dataset_hu_histogram(con)
        one = views.scan_hu_histogram(con, "syn0000000")
    assert list(log[["who", "row_count", "format"]].iloc[0]) == ["gus", 5, "txt"]
    assert counts == {
        "scans": 60,
        "ingest_errors": 3,
        "runs": 1,
        "labels": counts["labels"],
        "exports": 1,
    }
    assert len(hist) == len(one) == 64 and sum(hist) > sum(one) > 0


def test_synthetic_catalog_scales_to_100k_scans(settings):
    started = time.perf_counter()
    summary = build(settings, n_scans=100_000, n_volume_files=0)
    elapsed = time.perf_counter() - started
    with connect(settings.catalog_path, read_only=True) as con:
        n, flagged = con.execute(
            "SELECT count(*), count(*) FILTER (WHERE is_outlier) FROM scores"
        ).fetchall()[0]
    assert n == 100_000 and flagged == summary["flagged"] > 1000
    assert elapsed < 15, f"100k synthetic scans took {elapsed:.1f} s"
