"""Every dashboard page, rendered headless (AppTest) on a synthetic catalog: real numbers."""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys

import duckdb
import numpy as np
import pytest

from dashboard import charts, echarts
from data_catalog import connect, views
from tests.dashboard.conftest import build, figures, options, values


def _db(settings, sql, params=()):
    with connect(settings.catalog_path, read_only=True) as con:
        return con.execute(sql, list(params)).fetchall()


def test_overview_shows_counts_threshold_and_training_curve(catalog, open_page):
    at = open_page(catalog, "overview")
    metrics = {m.label: m.value for m in at.metric}
    flagged = _db(catalog, "SELECT count(*) FROM scores WHERE is_outlier")[0][0]
    assert metrics["Scans"] == "60"
    assert metrics["Ingest errors"] == "3"
    assert metrics["Flagged (> T)"] == str(flagged)
    threshold = _db(catalog, "SELECT threshold FROM runs")[0][0]
    assert f"T = **{threshold:.4g}**" in at.markdown[0].value
    assert "(mean + 3·std, n_val = " in at.markdown[0].value  # the rule in words, not its JSON
    assert figures(at) == []  # no Plotly on the page: the browser does not load its bundle
    (curve,) = options(at)
    assert [s["name"] for s in curve["series"]] == ["train", "validation"]
    assert [len(s["data"]) for s in curve["series"]] == [30, 30]
    (val_loss,) = _db(catalog, "SELECT val_loss FROM train_history WHERE epoch = 30")[0]
    assert curve["series"][1]["data"][-1] == [30, float(f"{val_loss:.4g}")]
    assert not any("not validated" in c.value for c in at.caption)  # every epoch was


def test_overview_says_when_scored_scans_have_no_flag_yet(catalog, open_page):
    at = open_page(catalog, "overview")
    assert not [w for w in at.warning if "no flag yet" in w.value]
    with connect(catalog.catalog_path) as con:  # what a scoring leaves until it sets T
        con.execute("UPDATE scores SET is_outlier = NULL WHERE scan_id IN "
                    "(SELECT scan_id FROM scores ORDER BY scan_id LIMIT 7)")
    at = open_page(catalog, "overview")
    (said,) = [w.value for w in at.warning if "no flag yet" in w.value]
    assert said.startswith("7 scored scans of run `synthetic` have no flag yet")


def test_overview_lists_scans_with_the_same_voxels(catalog, open_page):
    at = open_page(catalog, "overview")
    assert not [e for e in at.expander if "same voxels" in e.label]
    with connect(catalog.catalog_path) as con:  # one series stored twice
        con.execute("UPDATE scans SET content_hash = 'c0ffee' WHERE scan_id IN "
                    "('syn0000004', 'syn0000009')")
    at = open_page(catalog, "overview")
    (copies,) = [e for e in at.expander if "same voxels" in e.label]
    assert copies.label == "Scans with the same voxels as another (2 in 1 groups)"
    table = copies.dataframe[0].value
    assert table["scan_id"].tolist() == ["syn0000004", "syn0000009"]
    assert "source_path" in table.columns  # the open dashboard's visitor is its admin
    at = open_page(catalog, "overview", reviewer="rita", role="reviewer")
    (copies,) = [e for e in at.expander if "same voxels" in e.label]
    assert {"source_root", "source_path"}.isdisjoint(copies.dataframe[0].value.columns)


def test_overview_lists_the_scans_removed_from_the_catalog(catalog, open_page):
    import getpass

    from jobs.remove import run_remove

    at = open_page(catalog, "overview")
    assert not [e for e in at.expander if "removed" in e.label]
    run_remove(catalog, {"syn0000004": "copy", "syn0000009": "gone"}, {})
    at = open_page(catalog, "overview")
    (removed,) = [e for e in at.expander if "removed" in e.label]
    assert removed.label == "Scans removed from the catalog (2)"
    table = removed.dataframe[0].value.sort_values("scan_id")
    assert table[["scan_id", "reason"]].values.tolist() == [["syn0000004", "copy"],
                                                            ["syn0000009", "gone"]]
    assert set(table["removed_by"]) == {getpass.getuser()} and "source_path" in table.columns
    at = open_page(catalog, "overview", reviewer="rita", role="reviewer")
    (removed,) = [e for e in at.expander if "removed" in e.label]
    assert {"source_root", "source_path"}.isdisjoint(removed.dataframe[0].value.columns)


def test_overview_shows_the_jobs_running_and_the_last_ones(catalog, open_page):
    from ctae_core.io.processes import start_tick
    from data_catalog.job_runs import JobProcess, finish_job_run, start_job_run

    at = open_page(catalog, "overview")
    assert not [e for e in at.expander if "jobs" in e.label] and not at.info
    here = socket.gethostname()
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)
    with connect(catalog.catalog_path) as con:
        done = start_job_run(con, "ingest", {"sources": ["/data"]}, JobProcess(11, "node1", "7"))
        finish_job_run(con, done, "done", {"ingested": 60})
        start_job_run(con, "score", {"run_id": "synthetic"}, JobProcess(12, "node2", "8"))
        start_job_run(con, "embed", {"run_id": "synthetic"},
                      JobProcess(int(ended.stdout), here, "1"))  # killed: its process is gone
        start_job_run(con, "train", {"run_id": "r2"},
                      JobProcess(os.getpid(), here, start_tick(os.getpid())))  # this process
    at = open_page(catalog, "overview")
    running = sorted(i.value for i in at.info if "is running" in i.value)
    assert [r.split(" is running")[0] for r in running] == [
        "`ctae score` on run `synthetic`", "`ctae train` on run `r2`"]
    assert "(pid 12 on node2)" in running[0] and "cannot check" in running[0]  # another machine
    assert f"(pid {os.getpid()} on {here})" in running[1] and "cannot check" not in running[1]
    (gone,) = [w.value for w in at.warning if "without recording its end" in w.value]
    assert gone.startswith("`ctae embed` on run `synthetic`, started ")
    assert "kept: the same `ctae embed` command again goes on from what it wrote" in gone
    (jobs,) = [e for e in at.expander if "jobs" in e.label]
    assert jobs.label == "Recent jobs (4)"
    table = jobs.dataframe[0].value.sort_values("job")
    assert table[["job", "status", "run_id", "host"]].fillna("-").values.tolist() == [
        ["embed", "gone", "synthetic", here], ["ingest", "done", "-", "node1"],
        ["score", "running", "synthetic", "node2"], ["train", "running", "r2", here]]
    assert table["seconds"].isna().tolist() == [True, False, True, True]  # none while it runs


def test_overview_says_what_to_run_next_as_ctae_status_does(catalog, open_page):
    from ctae_core.io.processes import start_tick
    from data_catalog.job_runs import JobProcess, start_job_run

    def said(at):
        return [m.value for m in at.markdown if m.value.startswith("**Next**")]

    assert said(open_page(catalog, "overview")) == []  # scored, flagged, embedded: nothing to run
    with connect(catalog.catalog_path) as con:
        con.execute("UPDATE runs SET status = 'training', epochs_done = 4")
    (steps,) = said(open_page(catalog, "overview"))
    assert steps.endswith("\n- run synthetic: its training stopped at epoch 4 (training): "
                          "`ctae train --run synthetic --resume` goes on")
    with connect(catalog.catalog_path) as con:  # resumed in a process that runs
        start_job_run(con, "train", {"run_id": "synthetic"},
                      JobProcess(os.getpid(), socket.gethostname(), start_tick(os.getpid())))
    (steps,) = said(open_page(catalog, "overview"))
    assert steps.endswith("\n- run synthetic: train running")


def test_overview_compares_the_run_with_another(catalog, open_page):
    from dashboard import data

    at = open_page(catalog, "overview")
    assert not [e for e in at.expander if "Compare" in e.label]  # one run: nothing to compare
    with connect(catalog.catalog_path) as con:  # a second run: the same scores, two flags moved
        con.execute("INSERT INTO runs SELECT * REPLACE ('second' AS run_id, "  # older: not active
                    "created_at - INTERVAL 1 DAY AS created_at) FROM runs")
        con.execute("INSERT INTO scores SELECT * REPLACE ('second' AS run_id, -mse_m AS mse_m) "
                    "FROM scores")
        flagged = [r[0] for r in con.execute("SELECT scan_id FROM scores WHERE run_id = 'second' "
                                             "AND is_outlier ORDER BY scan_id").fetchall()]
        con.execute("UPDATE scores SET is_outlier = NOT is_outlier WHERE run_id = 'second' AND "
                    "scan_id IN (?, 'syn0000000')", [flagged[0]])
        n = con.execute("SELECT count(*) FROM scores WHERE run_id = 'synthetic'").fetchone()[0]
    data._LAST.clear()  # the sidebar's run list may be 10 s old (dashboard.data.run_table)
    at = open_page(catalog, "overview")
    (compare,) = [e for e in at.expander if "Compare" in e.label]
    (pick,) = [s for s in at.selectbox if s.key == "ov_compare"]
    assert (pick.options, pick.value, compare.metric) == (["second"], None, [])  # nothing read yet
    pick.set_value("second").run()
    (compare,) = [e for e in at.expander if "Compare" in e.label]
    metrics = {m.label: m.value for m in compare.metric}
    assert metrics["Flagged by both"] == str(len(flagged) - 1)
    assert metrics["Only by synthetic"] == "1" and metrics["Only by second"] == "1"
    assert metrics["Spearman ρ of the scores"] == "-1.00"  # its score is MSE_m, negated
    assert f"Over the {n:,} scans both runs scored and flagged" in compare.caption[0].value
    table = compare.dataframe[0].value
    assert sorted(table["scan_id"]) == sorted([flagged[0], "syn0000000"])
    assert {"flagged by synthetic", "flagged by second", "score (second)"} <= set(table.columns)


def test_a_removed_run_leaves_the_pages_without_a_traceback(catalog, open_page):
    from dashboard import data
    from jobs.remove import run_remove_run

    at = open_page(catalog, "explorer")
    run_remove_run(catalog, "synthetic")
    data._LAST.clear()  # the sidebar's run list may be 10 s old (dashboard.data.run_table)
    for page in ("explorer", "overview", "viewer", "feature_space", "export", "sessions"):
        at.switch_page(f"app_pages/{page}.py").run()
        assert not at.exception, (page, [e.value for e in at.exception])
        assert "no run yet" in at.info[0].value, page


def test_overview_says_which_epochs_were_not_validated(catalog, open_page):
    with connect(catalog.catalog_path) as con:  # a run validated from half its schedule on
        con.execute("UPDATE train_history SET val_loss = NULL WHERE epoch <= 15")
    at = open_page(catalog, "overview")
    (curve,) = options(at)
    validation = curve["series"][1]["data"]
    assert [v for _, v in validation[:15]] == [None] * 15 and None not in [v for _, v in validation[15:]]
    assert any(c.value.startswith("Epochs 1–15 were not validated") for c in at.caption)
    with connect(catalog.catalog_path) as con:  # resumed with another --validate-from: a gap
        con.execute("UPDATE train_history SET val_loss = 0.5 WHERE epoch <= 15")
        con.execute("UPDATE train_history SET val_loss = NULL WHERE epoch BETWEEN 11 AND 17 OR epoch = 20")
    at = open_page(catalog, "overview")
    assert any(c.value.startswith("Epochs 11–17 and 20 were not validated") for c in at.caption)


def test_overview_puts_the_runs_own_score_first_in_the_evaluation(catalog, open_page):
    from data_catalog import scores as catalog_scores

    (run_id, own), = _db(catalog, "SELECT run_id, threshold_score FROM runs")
    rows = [
        {"method": method, "outlier_type": kind, "n_inliers": 50, "n_outliers": n,
         "auroc": auroc, "average_precision": 0.5, "precision_at_t": 0.5, "recall_at_t": 0.5,
         "false_alarm_rate": 0.01,
         "spearman_pixel_count": 0.1}
        for method, auroc in ((own, 0.9), ("isolation_forest", 0.95), ("mse", 0.6))
        for kind, n in (("all", 10), ("metal", 4), ("noise", 6))
    ]
    with connect(catalog.catalog_path) as con:
        catalog_scores.write_evaluations(con, run_id, rows, "truth.csv")
    at = open_page(catalog, "overview")
    overall, per_type = at.dataframe[-4].value, at.dataframe[-3].value
    assert overall["method"].tolist() == ["isolation_forest", own, "mse"]
    assert per_type["outlier_type"].tolist() == ["metal", "noise"]
    assert per_type["n_outliers"].tolist() == [4, 6]
    # every method's AUROC per type, one row a method, best overall first, "all" first
    by_type = at.dataframe[-2].value
    assert list(by_type.columns) == ["all", "metal", "noise"]
    assert by_type.index.tolist() == ["isolation_forest", own, "mse"]
    assert by_type.loc[own].tolist() == [0.9, 0.9, 0.9] and by_type.loc["mse", "noise"] == 0.6
    assert not any(c.value.startswith("Per base") for c in at.caption)  # the truth named no bases
    bases = [{"base": name, "n_inliers": 20, "n_outliers": n, "auroc_within": within,
              "auroc_cohort": cohort, "recall_at_t": float("nan") if n == 0 else 0.5,
              "inliers_flagged": flagged}
             for name, n, within, cohort, flagged in (("chest-B", 4, 0.8, 0.75, 1),
                                                      ("abdomen", 0, float("nan"), float("nan"), 0))]
    with connect(catalog.catalog_path) as con:
        catalog_scores.write_evaluation_bases(con, run_id, bases, "truth.csv")
    at = open_page(catalog, "overview")
    assert any(c.value.startswith("Per base of the truth file") for c in at.caption)
    by_base = at.dataframe[-3].value.set_index("base")
    shown = by_base.loc["chest-B", ["n_outliers", "auroc_within", "auroc_cohort", "inliers_flagged"]]
    assert shown.tolist() == [4, 0.8, 0.75, 1]
    assert by_base.loc["abdomen"].isna()[["auroc_within", "recall_at_t"]].all()  # stored as NULL


def _chart_key(at, index: int) -> str:
    """The widget key of the page's ``index``-th ECharts chart (it names the drawn points)."""
    return at.get("echarts_chart")[index].proto.id.split("-", 2)[2]


def _items(option: dict) -> int:
    """Data items over the scatter series that draw scans (not the density layer)."""
    return sum(len(s["data"]) for s in option["series"] if s["name"] != echarts.DENSITY_NAME)


def test_explorer_scatters_histograms_and_split_filter(catalog, open_page):
    at = open_page(catalog, "explorer")
    assert figures(at) == []  # no Plotly on the page: the browser does not load its bundle
    pixels, hu, hist = options(at)
    assert {s["type"] for s in pixels["series"]} == {"scatter"}
    assert _items(pixels) == _items(hu) == 60
    flagged = _db(catalog, "SELECT count(*) FROM scores WHERE is_outlier")[0][0]
    by_name = {s["name"]: len(s["data"]) for s in pixels["series"]}
    assert by_name["flagged"] == flagged and by_name["not flagged"] == 60 - flagged
    # every point carries its hover facts: scan id, pixel count, score
    (sid, pixel_count, mse_m), = _db(
        catalog, "SELECT scan_id, pixel_count, mse_m FROM scans JOIN scores USING (scan_id) "
        "WHERE is_outlier ORDER BY scan_id LIMIT 1"
    )
    flagged_points = next(s for s in pixels["series"] if s["name"] == "flagged")
    assert [pixel_count, float(f"{mse_m:.4g}"), sid] in flagged_points["data"]
    assert "{@[2]}" in flagged_points["tooltip"]["formatter"]
    threshold = _db(catalog, "SELECT threshold FROM runs")[0][0]
    assert pixels["series"][-1]["markLine"]["data"] == [{"yAxis": threshold}]
    assert {"rect", "polygon"} <= set(pixels["toolbox"]["feature"]["brush"]["type"])
    n_val, n_test = _db(
        catalog, "SELECT count(*) FILTER (split='val'), count(*) FILTER (split='test') FROM scores"
    )[0]
    assert [sum(n for _, n in s["data"]) for s in hist["series"]] == [n_val, n_test]  # binned
    assert [len(s["data"]) for s in hist["series"]] == [60, 60]
    assert len(at.dataframe[0].value) == flagged

    assert pixels["yAxis"]["type"] == "value"
    at.toggle(key="explorer_log").set_value(True).run()
    assert [o["yAxis"]["type"] for o in options(at)[:2]] == ["log", "log"]
    assert _items(options(at)[0]) == 60

    at.multiselect(key="explorer_splits").set_value(["test"]).run()
    assert _items(options(at)[0]) == n_test
    assert [s["name"] for s in options(at)[2]["series"]] == [f"test (n={n_test})"]
    at.multiselect(key="explorer_splits").set_value(["test", "train"]).run()  # in split order
    (n_train,) = _db(catalog, "SELECT count(*) FROM scores WHERE split = 'train'")[0]
    assert [s["name"] for s in options(at)[2]["series"]] == [f"train (n={n_train})",
                                                              f"test (n={n_test})"]
    at.multiselect(key="explorer_splits").set_value(["test"]).run()
    at.selectbox(key="explorer_color").set_value("cluster").run()
    names = {s["name"] for s in options(at)[0]["series"]}
    assert names <= {"noise"} | {f"cluster {c}" for c in (0, 1, 2, 3)}


def test_explorer_lists_only_the_highest_scoring_flagged_scans_when_there_are_many(
    catalog, open_page, monkeypatch
):
    (score,) = _db(catalog, "SELECT threshold_score FROM runs")[0]
    flagged = _db(catalog, f"SELECT scan_id FROM scores WHERE is_outlier ORDER BY {score} DESC")
    assert len(flagged) > 1
    monkeypatch.setattr(charts, "TABLE_ROWS", 1)
    at = open_page(catalog, "explorer")
    assert at.dataframe[0].value["scan_id"].tolist() == [flagged[0][0]]
    assert f"The 1 highest-scoring of {len(flagged)} flagged scans" in at.caption[1].value


def test_explorer_selection_becomes_the_viewer_queue(catalog, open_page):
    at = open_page(catalog, "explorer")
    pixels = options(at)[0]
    index = {s["name"]: k for k, s in enumerate(pixels["series"])}
    flagged = [row[2] for row in pixels["series"][index["flagged"]]["data"]]
    at.session_state[_chart_key(at, 0)] = {  # two points clicked, as ECharts reports them
        "selection": {
            "selected": [{"series_index": index["flagged"], "series_id": None,
                          "series_name": "flagged", "data_type": "main", "data_indices": [0, 1]}],
            "areas": [],
        }
    }
    at.run()
    assert "2 scans selected" in at.success[0].value
    key = _chart_key(at, 0)
    at.toggle(key="explorer_log").set_value(True).run()  # the same points on a log axis
    assert _chart_key(at, 0) == key and "2 scans selected" in at.success[0].value
    at.toggle(key="explorer_log").set_value(False).run()
    at.button(key="open_selection").click().run()
    assert not at.exception
    assert at.session_state["selected_scans"] == flagged[:2]
    assert at.subheader[0].value == f"Scan `{flagged[0]}`"
    assert "Scan 1 of 2" in at.get("progress")[0].proto.text


def test_explorer_forgets_a_point_selection_when_other_points_are_drawn(catalog, open_page):
    at = open_page(catalog, "explorer")
    at.session_state[_chart_key(at, 0)] = {"selection": {"selected": [
        {"series_index": 0, "series_id": None, "series_name": "flagged", "data_type": "main",
         "data_indices": [0]}
    ], "areas": []}}
    at.run()
    assert "1 scans selected" in at.success[0].value
    at.multiselect(key="explorer_splits").set_value(["test"]).run()  # item 0 is another scan now
    assert not at.success and not at.exception


def test_explorer_draws_a_density_with_flagged_points_and_box_selects_through_it(
    settings, open_page
):
    n = charts.DENSITY_FROM + 1000
    build(settings, n_scans=n, n_volume_files=1)
    at = open_page(settings, "explorer")
    pixels, hu, _ = options(at)
    layer = [s for s in pixels["series"] if s["name"] == echarts.DENSITY_NAME]
    assert 1 < len(layer) <= echarts.DENSITY_SHADES and {s["symbol"] for s in layer} == {"rect"}
    assert sum(cell[2] for s in layer for cell in s["data"]) == n  # every scan counted in a cell
    shades = [max(cell[2] for cell in s["data"]) for s in layer]
    assert shades == sorted(shades)  # darker shades hold fuller cells
    # a box or a lasso picks the drawn points, not the density cells
    assert pixels["brush"]["seriesIndex"] == list(range(len(layer), len(pixels["series"])))
    marked = _db(
        settings,
        "SELECT count(*) FROM scores s WHERE is_outlier OR scan_id IN (SELECT scan_id FROM labels)",
    )[0][0]
    assert 0 < marked < n
    assert _items(pixels) == marked
    assert len(json.dumps(pixels)) < 150_000  # not one marker per scan

    # a box over the density takes every scan inside it, drawn as a point or not
    box = [[0, 3e6], [0.0, 0.2]]
    inside = _db(
        settings,
        "SELECT count(*) FROM scores sc JOIN scans s USING (scan_id) "
        "WHERE s.pixel_count BETWEEN ? AND ? AND sc.mse_m BETWEEN ? AND ?",
        [*box[0], *box[1]],
    )[0][0]
    assert inside > 100
    at.session_state[_chart_key(at, 0)] = {
        "selection": {"selected": [], "areas": [
            {"brush_index": 0, "brush_type": "rect", "coord_range": box}
        ]}
    }
    at.run()
    assert f"{inside} scans selected" in at.success[0].value

    at.toggle(key="explorer_log").set_value(True).run()
    pixels = options(at)[0]
    assert pixels["yAxis"]["type"] == "log"
    layer = [s for s in pixels["series"] if s["name"] == echarts.DENSITY_NAME]
    assert sum(cell[2] for s in layer for cell in s["data"]) == n  # MSE_m > 0: all on a log axis
    at.multiselect(key="explorer_splits").set_value(["test"]).run()
    n_test = _db(settings, "SELECT count(*) FROM scores WHERE split = 'test'")[0][0]
    assert n_test < charts.DENSITY_FROM  # few enough for one marker each again
    assert _items(options(at)[0]) == n_test
    assert all(s["name"] != echarts.DENSITY_NAME for s in options(at)[0]["series"])


def test_feature_space_umap_flagged_and_live_dbscan(catalog, open_page):
    at = open_page(catalog, "feature_space")
    umap, hist_pixels, hist_mse = figures(at)
    traces = {t["name"]: len(values(t["x"])) for t in umap["data"]}
    flagged = _db(catalog, "SELECT count(*) FROM scores WHERE is_outlier")[0][0]
    assert traces.pop("flagged (> T)") == flagged
    assert sum(traces.values()) == 60
    clusters = _db(catalog, "SELECT cluster, count(*) FROM embeddings GROUP BY 1 ORDER BY 1")
    assert sorted(len(values(t["x"])) for t in hist_pixels["data"]) == sorted(
        n for _, n in clusters
    )
    at.toggle(key="fs_live").set_value(True).run()
    at.slider(key="fs_eps").set_value(0.1).run()
    assert not at.exception
    assert "live DBSCAN" in at.caption[0].value
    live_noise = int(at.caption[0].value.split("clusters · ")[1].split(" noise")[0])
    assert live_noise > dict(clusters).get(-1, 0)  # a small eps leaves more points as noise
    at.selectbox(key="fs_color").set_value("pixel_count").run()
    assert figures(at)[0]["data"][0]["marker"]["showscale"] is True
    # do the clusters follow the scanner? one trace per manufacturer, every scan in one
    at.selectbox(key="fs_color").set_value("manufacturer").run()
    makers = dict(_db(catalog, "SELECT coalesce(manufacturer, 'unknown'), count(*) FROM scans "
                               "JOIN embeddings USING (scan_id) GROUP BY 1"))
    shown = {t["name"]: len(values(t["x"])) for t in figures(at)[0]["data"] if t["name"] != "flagged (> T)"}
    assert shown == makers
    at.selectbox(key="fs_color").set_value("flag").run()
    names = {t["name"] for t in figures(at)[0]["data"]}
    assert {"flagged", "not flagged"} <= names and not at.exception


def test_feature_space_says_what_the_clusters_follow(catalog, open_page):
    # the agreement of the stored clusters with the scanner, recomputed here from the catalog
    from sklearn.metrics import adjusted_mutual_info_score

    at = open_page(catalog, "feature_space")
    table = at.dataframe[0].value.set_index("the clusters follow")
    rows = _db(catalog, "SELECT e.cluster, coalesce(s.manufacturer, 'unknown') || ' · ' || "
                        "coalesce(s.kernel, 'unknown') FROM embeddings e JOIN scans s USING (scan_id) "
                        "WHERE e.cluster >= 0")
    expected = adjusted_mutual_info_score([r[1] for r in rows], [r[0] for r in rows])
    scanner = table.loc["scanner (manufacturer · kernel)"]
    assert scanner["agreement"] == pytest.approx(expected)
    assert scanner["scans compared"] == len(rows)
    assert table.loc["size (pixel-count thirds)", "scans compared"] == len(rows)
    assert table.loc["reviewers' label", "scans compared"] <= len(rows)


def test_empty_and_partial_catalogs_name_the_next_job(settings, tmp_path, open_page):
    from tests.dashboard.conftest import build

    for page in ("overview", "explorer", "viewer", "export"):
        at = open_page(settings, page)
        assert "ctae ingest" in at.info[0].value
    build(settings, run_id=None, n_volume_files=0)
    for page in ("overview", "explorer", "feature_space", "team"):
        at = open_page(settings, page)
        assert "ctae train" in at.info[0].value, page
    other = settings.__class__.resolve(tmp_path / "b" / "c.duckdb", tmp_path / "b" / "s", env={})
    build(other, with_embeddings=False, n_volume_files=0)
    at = open_page(other, "feature_space")
    assert "ctae embed --run synthetic" in at.info[0].value
    assert len(options(open_page(other, "explorer"))) == 3


def test_a_catalog_setting_that_holds_no_catalog_says_so_on_the_page(settings, open_page):
    settings.catalog_path.parent.mkdir(parents=True, exist_ok=True)
    settings.catalog_path.write_text("not a database\n")
    at = open_page(settings, "overview")
    (error,) = at.error
    assert error.value.startswith(f"The dashboard cannot use its files: {settings.catalog_path}: DuckDB ")
    assert "point --catalog" in error.value
    assert settings.catalog_path.read_text() == "not a database\n"


def test_a_damaged_accounts_file_shows_no_page_until_it_is_fixed(catalog, open_page):
    from data_catalog.accounts import users_path

    users_path(catalog.catalog_path).write_text("{not json")
    at = open_page(catalog, "overview")  # with no readable accounts the site does not open up
    (error,) = at.error
    assert error.value.startswith(f"The dashboard cannot use its files: {users_path(catalog.catalog_path)}: "
                                  "not a ctae accounts file")
    assert not at.metric and not at.sidebar.selectbox and not at.get("plotly_chart")


def test_an_accounts_path_that_is_a_folder_shows_no_page_either(catalog, open_page):
    from data_catalog.accounts import users_path

    users = users_path(catalog.catalog_path)
    users.mkdir()  # until stop 55 read as "no accounts": the site opened without sign-in
    at = open_page(catalog, "overview")
    (error,) = at.error
    assert error.value.startswith(f"The dashboard cannot use its files: {users} is a folder, not an "
                                  "accounts file; point $CTAE_USERS at a file")
    assert not at.metric and not at.sidebar.selectbox and not at.get("plotly_chart")


def test_team_page_progress_and_disagreements(catalog, open_page):
    at = open_page(catalog, "team")
    progress, disagree = at.dataframe[0].value, at.dataframe[1].value
    with connect(catalog.catalog_path, read_only=True) as con:
        expected = views.disagreements(con, "synthetic")
    assert list(progress["reviewer"]) == ["alice", "bob"]
    assert list(disagree["scan_id"]) == list(expected["scan_id"])
    assert len(disagree) >= 1
    alice = _db(catalog, "SELECT count(DISTINCT scan_id) FROM labels WHERE reviewer='alice'")[0][0]
    assert int(progress.loc[progress["reviewer"] == "alice", "scans_labelled"].iloc[0]) == alice


def test_export_page_keeps_one_scan_per_copy_when_asked(catalog, open_page):
    at = open_page(catalog, "export", reviewer="carol")
    assert at.toggle(key="ex_drop_copies").disabled  # no copies: nothing to drop
    with connect(catalog.catalog_path) as con:  # one series stored three times
        con.execute("UPDATE scans SET content_hash = 'c0ffee' WHERE scan_id IN "
                    "('syn0000004', 'syn0000009', 'syn0000011')")
    at = open_page(catalog, "export", reviewer="carol")
    assert at.metric[0].value == "60" and not at.toggle(key="ex_drop_copies").disabled
    at.toggle(key="ex_drop_copies").set_value(True).run()
    assert at.metric[0].value == "58"


def test_export_page_count_download_and_log(catalog, open_page):
    at = open_page(catalog, "export", reviewer="carol")
    assert at.metric[0].value == "60"
    threshold, flagged = _db(
        catalog,
        "SELECT any_value(threshold), (SELECT count(*) FROM scores WHERE is_outlier) FROM runs",
    )[0]
    low, high = at.slider(key="ex_score").value
    at.slider(key="ex_score").set_value((threshold, high)).run()
    assert at.metric[0].value == str(flagged)
    at.slider(key="ex_score").set_value((low, high)).run()
    at.selectbox(key="ex_flag").set_value("inlier").run()
    at.toggle(key="ex_exclude").set_value(True).run()
    inliers = _db(catalog, "SELECT count(*) FROM scores WHERE NOT is_outlier")[0][0]
    outlier_labels = _db(
        catalog,
        "SELECT count(DISTINCT l.scan_id) FROM labels l JOIN scores s USING (scan_id) "
        "WHERE NOT s.is_outlier AND l.verdict = 'outlier'",
    )[0][0]
    assert at.metric[0].value == str(inliers - outlier_labels)
    at.button(key="ex_prepare").click().run()
    payload, fmt, rows, _ = at.session_state["ex_payload"]
    lines = payload.decode().strip().splitlines()
    assert fmt == "csv" and rows == inliers - outlier_labels == len(lines) - 1
    header = next(csv.reader(lines[:1]))
    assert header[:4] == ["scan_id", "series_uid", "source_root", "source_path"]
    logged = _db(catalog, "SELECT who, row_count, format, filter_json FROM exports")
    assert logged[0][:3] == ("carol", rows, "csv")
    assert '"flag": "inlier"' in logged[0][3] and '"exclude_outliers": true' in logged[0][3]
    # a second snapshot, as a MONAI datalist of every scan, and what changed since the first
    at.selectbox(key="ex_flag").set_value("any").run()
    at.toggle(key="ex_exclude").set_value(False).run()
    at.radio(key="ex_format").set_value("monai").run()
    at.button(key="ex_prepare").click().run()
    payload, fmt, rows_b, _ = at.session_state["ex_payload"]
    datalist = json.loads(payload)
    assert fmt == "monai" and rows_b == 60
    assert len(datalist["training"]) + len(datalist["validation"]) + len(datalist["test"]) == 60
    diff = [m.value for m in at.markdown if " added · " in m.value]
    assert len(diff) == 1 and diff[0].startswith(f"**{60 - rows:,} added · 0 removed")
    changes = at.dataframe[-1].value
    assert (changes["change"] == "added").sum() == 60 - rows and "filter changed" in set(changes["reasons"])


def test_pages_never_hold_the_catalog_open(catalog, open_page):
    open_page(catalog, "explorer")
    con = duckdb.connect(str(catalog.catalog_path))  # a job taking the write lock must succeed
    con.execute("UPDATE runs SET epochs_done = 31")
    con.close()
    assert np.isclose(_db(catalog, "SELECT epochs_done FROM runs")[0][0], 31)


def test_feature_space_colours_each_cluster_alike_in_the_umap_and_the_histograms(catalog, open_page):
    def colours(figure):
        return {t["name"].split(" (n=")[0]: t["marker"]["color"] for t in figure["data"]
                if t["name"] != "flagged (> T)"}

    at = open_page(catalog, "feature_space")
    for live_eps in (None, 0.4):  # stored clusters with noise; then 11 live ones ("cluster 10" sorts first)
        if live_eps is not None:
            at.toggle(key="fs_live").set_value(True).run()
            at.slider(key="fs_min_pts").set_value(2).run()
            at.slider(key="fs_eps").set_value(live_eps).run()
        umap, hist_pixels, hist_mse = figures(at)
        in_umap = colours(umap)
        assert "noise" in in_umap and len(in_umap) == (5 if live_eps is None else 12)
        assert colours(hist_pixels) == in_umap
        assert colours(hist_mse) == in_umap
        assert len(set(in_umap.values())) == min(len(in_umap), 11)  # 10 cluster colours + grey noise
        for figure, column in ((hist_pixels, "pixel_count"), (hist_mse, "mse_m")):
            (shared,) = {json.dumps(t["xbins"], sort_keys=True) for t in figure["data"]}  # one set
            bins = json.loads(shared)
            values = _db(catalog, f"SELECT min({column}), max({column}) FROM scans JOIN scores "
                                  "USING (scan_id)")[0]
            assert bins["start"] == pytest.approx(values[0])
            assert bins["size"] == pytest.approx((values[1] - values[0]) / charts.CLUSTER_BINS)
            assert bins["end"] > values[1]  # the largest value has a bin
