"""The scan viewer and review page: images, queue, labels written to DuckDB, a busy catalog."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from dashboard import data as dashboard_data
from data_catalog import connect
from tests.dashboard.conftest import figures, values


def _labels(settings):
    with connect(settings.catalog_path, read_only=True) as con:
        return con.execute(
            "SELECT scan_id, reviewer, verdict, causes, note FROM labels "
            "WHERE reviewer = 'dana' ORDER BY created_at"
        ).fetchall()


def _open_selection(open_page, settings, scan_ids, reviewer="dana"):
    at = open_page(settings, "overview", reviewer=reviewer)
    at.session_state["view_mode"] = "server-rendered"  # the interactive view has its own tests
    at.session_state["selected_scans"] = scan_ids
    at.session_state["queue_source"] = "current selection"
    at.switch_page("app_pages/viewer.py").run()
    assert not at.exception
    return at


def test_viewer_draws_three_planes_of_scan_reconstruction_and_error(catalog, open_page):
    at = _open_selection(open_page, catalog, ["syn0000001", "syn0000002"])
    assert at.subheader[0].value == "Scan `syn0000001`"
    assert len(at.get("image")) == 9  # 3 planes × (original + overlay, reconstruction, |error|)
    assert "6 mm grid (original 3 mm)" in at.caption[0].value
    (hist,) = figures(at)
    scan, dataset = (values(t["y"]) for t in hist["data"][::-1])
    assert np.isclose(scan.sum(), 1.0) and np.isclose(dataset.sum(), 1.0)
    facts = dict(zip(at.dataframe[0].value["fact"], at.dataframe[0].value["value"], strict=True))
    assert facts["size_z"] == "24" and facts["spacing_mm"] == "3"
    at.slider(key="slice_axial_syn0000001").set_value(3).run()
    at.selectbox(key="window").set_value("custom").run()
    at.number_input(key="win_w").set_value(1500.0).run()
    assert not at.exception and len(at.get("image")) == 9
    at.button(key="next").run()
    at.button(key="next").click().run()
    assert at.subheader[0].value == "Scan `syn0000002`"


def test_label_is_written_with_reviewer_causes_and_note(catalog, open_page):
    at = _open_selection(open_page, catalog, ["syn0000003", "syn0000002"])
    at.multiselect(key="causes_syn0000003").set_value(["metal implant"])  # form: no rerun
    at.text_area(key="note_syn0000003").input("bright streaks, hip")
    at.button(key="verdict_outlier").click().run()
    assert not at.exception
    assert _labels(catalog) == [
        ("syn0000003", "dana", "outlier", ["metal implant"], "bright streaks, hip")
    ]
    assert "Saved: syn0000003 → outlier by dana" in at.success[0].value
    assert at.subheader[0].value == "Scan `syn0000002`"  # advanced to the next in the queue
    at.button(key="prev").click().run()
    history = at.dataframe[1].value
    assert list(history["reviewer"])[0] == "dana" and list(history["verdict"])[0] == "outlier"


def test_label_needs_a_reviewer_name(catalog, open_page):
    at = _open_selection(open_page, catalog, ["syn0000003"], reviewer=None)
    at.button(key="verdict_inlier").click().run()
    assert "Enter your name as Reviewer" in at.warning[0].value
    with connect(catalog.catalog_path, read_only=True) as con:
        assert (
            con.execute("SELECT count(*) FROM labels WHERE note IS NOT NULL").fetchall()[0][0] == 0
        )


def _hold_lock(settings) -> subprocess.Popen:
    """A second process holding the catalog read-write, as a batch job does."""
    code = (
        "import duckdb, sys\n"
        f"con = duckdb.connect({str(settings.catalog_path)!r})\n"
        "print('locked', flush=True)\n"
        "sys.stdin.readline()\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_busy_catalog_keeps_the_label_in_the_form(catalog, open_page, monkeypatch):
    at = _open_selection(open_page, catalog, ["syn0000003"])
    monkeypatch.setattr(dashboard_data, "WRITE_WAIT_S", 0.3)
    monkeypatch.setattr(dashboard_data, "READ_WAIT_S", 0.3)
    holder = _hold_lock(catalog)
    try:
        at.multiselect(key="causes_syn0000003").set_value(["cable or tube"])
        at.button(key="verdict_outlier").click().run()
        assert not at.exception
        assert "catalog is busy" in at.warning[0].value
        assert at.multiselect(key="causes_syn0000003").value == ["cable or tube"]
    finally:
        holder.stdin.close()
        holder.wait(timeout=10)
    at.button(key="verdict_outlier").click().run()
    assert _labels(catalog) == [("syn0000003", "dana", "outlier", ["cable or tube"], None)]


def test_evidence_caption_names_every_kind_and_the_strongest():
    import pandas as pd

    from ctae_core.outlier_score import EVIDENCE
    from dashboard.viewer_parts import EVIDENCE_NAMES, evidence_caption

    assert tuple(EVIDENCE_NAMES) == EVIDENCE
    scan = pd.Series({name: 0.5 for name in EVIDENCE} | {"streak_z": 6.2, "noise_z": None})
    caption = evidence_caption(scan)
    assert caption.startswith(f"Strongest evidence: {EVIDENCE_NAMES['streak_z']} (z +6.2;")
    assert "noise_z" not in caption
    assert evidence_caption(pd.Series({"mse_m": 0.3})) is None
