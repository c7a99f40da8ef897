"""The Overview of a catalog whose every input was refused says why, by reason."""

from __future__ import annotations

import os

import numpy as np

from ctae_core.io.dicom_writer import SeriesHeaderSpec
from jobs.ingest import run_ingest
from tests.dicom_factory import write_phantom


def test_overview_lists_refusals_by_reason_when_no_scan_was_ingested(tmp_path, settings, open_page):
    root = tmp_path / "in"
    write_phantom(root / "mr", header=SeriesHeaderSpec(series_uid="1.2.826.5", modality="MR"))
    for name in ("a.dcm", "b.dcm"):
        (root / name).write_bytes(np.random.RandomState(len(name)).bytes(400))
    os.mkfifo(root / "pipe.dcm")
    summary = run_ingest([root], settings, workers=1, progress=False)
    assert summary.ingested == 0
    at = open_page(settings, "overview")
    (warning,) = at.warning
    assert "No scans yet: ingest refused every input it found (4: 2 × not_dicom" in warning.value
    by_reason, rows = at.dataframe
    assert by_reason.value["inputs"].to_dict() == {
        "not_dicom": 2,
        "not_ct": 1,
        "not_a_regular_file": 1,
    }
    assert sorted(rows.value["message"].str.split(":").str[0]) == [
        "a.dcm",
        "b.dcm",
        "mr",
        "pipe.dcm",
    ]
    assert not at.metric  # the page stopped before the scan counts
