"""`ctae export` and `ctae dashboard` from the command line, on a synthetic catalog."""

from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

from data_catalog import connect, views
from data_catalog.filters import ExportFilter, apply_filter
from data_catalog.snapshots import snapshot_log
from jobs.cli import app
from jobs.dashboard import streamlit_command
from jobs.launch import main
from jobs.synthetic_catalog import SyntheticSpec, build_synthetic_catalog

runner = CliRunner()


@pytest.fixture
def catalog(settings):
    build_synthetic_catalog(settings, SyntheticSpec(n_scans=80, n_volume_files=0))
    return settings


def _export(catalog, out, *args):
    return runner.invoke(
        app,
        [
            "export",
            "--catalog",
            str(catalog.catalog_path),
            "--run",
            "synthetic",
            "--out",
            str(out),
            "--who",
            "hal",
            *args,
        ],
    )


def _expected(catalog, filt):
    with connect(catalog.catalog_path, read_only=True) as con:
        return apply_filter(views.scan_table(con, "synthetic"), filt)


def test_export_csv_matches_the_shared_filter_and_is_logged(catalog, tmp_path):
    out = tmp_path / "lists" / "clean.csv"
    result = _export(
        catalog,
        out,
        "--split",
        "train",
        "--split",
        "val",
        "--exclude-outliers",
        "--pixel-count-max",
        "1500000",
    )
    assert result.exit_code == 0, result.output
    got = pd.read_csv(out)
    want = _expected(
        catalog,
        ExportFilter(split=("train", "val"), exclude_outliers=True, pixel_count_max=1_500_000),
    )
    assert 0 < len(got) < 80
    assert list(got["scan_id"]) == list(want["scan_id"])
    assert set(got["split"]) <= {"train", "val"} and (got["pixel_count"] <= 1_500_000).all()
    assert f"exported {len(got)} scans" in result.output
    with connect(catalog.catalog_path, read_only=True) as con:
        log = views.export_log(con)
    assert list(log[["who", "row_count", "format"]].iloc[0]) == ["hal", len(got), "csv"]
    assert log["destination"].iloc[0] == str(out.resolve())
    assert '"split": ["train", "val"]' in log["filter_json"].iloc[0]


def test_export_txt_and_parquet_formats(catalog, tmp_path):
    assert _export(catalog, tmp_path / "flagged.txt", "--flag", "outlier").exit_code == 0
    lines = (tmp_path / "flagged.txt").read_text().splitlines()
    flagged = _expected(catalog, ExportFilter(flag="outlier"))
    assert lines == list("/data/synthetic/" + flagged["source_path"]) and len(lines) > 0
    assert (
        _export(
            catalog,
            tmp_path / "l.bin",
            "--format",
            "parquet",
            "--label",
            "outlier",
            "--cause",
            "metal implant",
        ).exit_code
        == 0
    )
    got = pd.read_parquet(tmp_path / "l.bin")
    assert (got["label"] == "outlier").all()
    assert len(got) == len(
        _expected(catalog, ExportFilter(label=("outlier",), cause=("metal implant",)))
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--split", "dev"], "split ['dev']"),
        (["--flag", "odd"], "flag 'odd'"),
        (["--format", "xls"], "--format 'xls'"),
        (["--score-min", "2", "--score-max", "1"], "score range is empty"),
        # until stop 55 each of these exported 0 scans, and logged the snapshot
        (["--cause", "metl implant"], "cause ['metl implant'] is not one of ['metal implant',"),
        (["--score-min", "nan"], "score bounds must be numbers, not nan"),
        (["--cluster", "99"], "cluster [99] is not among the clusters of run 'synthetic': [-1, 0,"),
    ],
)
def test_export_rejects_bad_filters_with_a_reason(catalog, tmp_path, args, message):
    result = _export(catalog, tmp_path / "x.csv", *args)
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())
    assert not (tmp_path / "x.csv").exists()


def _files(folder):
    return {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize(
    ("name", "what"),
    [
        ("catalog.duckdb", "the catalog"),  # until stop 55 the CSV replaced it
        ("catalog.duckdb.wal", "the catalog's write-ahead log"),
        ("catalog.review.sqlite", "the review journal"),
        ("users.json", "the dashboard's accounts"),
        ("store/volumes/list.csv", "in the volume store"),
        ("store.source-paths.csv", "the path map of `--redact-paths`"),  # until stop 57 replaced
    ],
)
def test_an_export_never_writes_over_the_catalogs_own_files(catalog, name, what):
    folder = catalog.catalog_path.parent
    (folder / "users.json").write_text("{}")
    before = _files(folder)
    target = folder / name
    result = _export(catalog, target)
    assert result.exit_code == 2
    said = " ".join(result.output.split())
    assert f"{target} is {what}" in said
    assert "an export never writes over the catalog's own files or into its store" in said
    assert _files(folder) == before  # nothing written, nothing replaced
    with connect(catalog.catalog_path, read_only=True) as con:
        assert snapshot_log(con).empty


def test_an_export_to_a_folder_or_below_a_file_says_so_and_leaves_nothing(catalog, tmp_path):
    tmp_path = tmp_path / "exports"  # the catalog's folder holds the catalog
    out = tmp_path / "lists"
    out.mkdir(parents=True)
    result = _export(catalog, out)  # until stop 55: a traceback, and a temp file left beside it
    assert result.exit_code == 2
    assert f"--out {out} is a folder; a csv export is one file: give its name, e.g. {out / 'clean.csv'}" in (
        " ".join(result.output.split()))
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder goes")
    result = _export(catalog, blocker / "clean.csv")
    assert result.exit_code == 2
    assert f"ctae export: --out {blocker / 'clean.csv'}: could not be written (" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocker", "lists"]
    assert not any(out.iterdir())
    with connect(catalog.catalog_path, read_only=True) as con:
        assert snapshot_log(con).empty


def test_an_export_that_no_scan_passes_is_written_and_said_to_be_empty(catalog, tmp_path):
    # until stop 56 an empty list was written and logged without a word
    result = _export(catalog, tmp_path / "none.csv", "--score-min", "1e9")
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert "exported 0 scans of run synthetic" in said
    assert "no scan of run synthetic passes these filters: the list is empty" in said
    assert pd.read_csv(tmp_path / "none.csv").empty
    some = _export(catalog, tmp_path / "some.csv", "--flag", "outlier")
    assert some.exit_code == 0 and "the list is empty" not in some.output


def test_export_names_a_missing_run_and_catalog(catalog, tmp_path, capsys):
    result = runner.invoke(
        app,
        [
            "export",
            "--catalog",
            str(catalog.catalog_path),
            "--run",
            "nope",
            "--out",
            str(tmp_path / "x.csv"),
        ],
    )
    assert result.exit_code == 2 and "run 'nope' is not in" in " ".join(result.output.split())
    missing = tmp_path / "none" / "c.duckdb"
    with pytest.raises(SystemExit) as done:  # through ctae's entry point, which says it
        main(["export", "--catalog", str(missing), "--run", "r", "--out", str(tmp_path / "x.csv")])
    assert done.value.code == 1
    assert f"ctae export: {missing}: no catalog here yet" in capsys.readouterr().err
    assert not missing.parent.exists()


def test_dashboard_command_line():
    cmd = streamlit_command(8600, "0.0.0.0")
    assert cmd[1:4] == ["-m", "streamlit", "run"] and cmd[4].endswith("dashboard/app.py")
    assert cmd[cmd.index("--server.port") + 1] == "8600"
    assert cmd[cmd.index("--server.headless") + 1] == "true"  # never the first-run e-mail prompt
    result = runner.invoke(app, ["dashboard", "--port", "0"])
    assert result.exit_code == 2 and "--port 0 must be between 1 and 65535" in result.output


def test_browser_opener_waits_for_the_port():
    import socket

    from jobs.browser import wait_for_port

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert wait_for_port("127.0.0.1", port, timeout_s=2.0)
    assert not wait_for_port("127.0.0.1", port, timeout_s=0.6)  # closed again


def test_an_export_stopped_by_ctrl_c_says_so_and_leaves_no_file_or_log(catalog, tmp_path, monkeypatch):
    # until stop 56 click's "Aborted!" and exit 1 (the README's "not ready"), and the list's
    # part file stayed beside --out
    import jobs.export as export_job

    def interrupted(snapshot, fmt):
        raise KeyboardInterrupt

    monkeypatch.setattr(export_job, "render_list", interrupted)
    with connect(catalog.catalog_path, read_only=True) as con:
        logged = len(snapshot_log(con))
    out = tmp_path / "out" / "list.csv"
    result = _export(catalog, out)
    assert result.exit_code == 130, result.output
    assert "ctae export: interrupted (Ctrl+C); the export is not logged" in " ".join(result.output.split())
    assert not out.parent.exists() or list(out.parent.iterdir()) == []
    with connect(catalog.catalog_path, read_only=True) as con:
        assert len(snapshot_log(con)) == logged
