"""`ctae ingest --redact-paths`: folder and file names chosen after patients reach neither the
catalog, nor the store, nor the logs, nor exports, nor the dashboard; an owner-only mapping
file beside the store links the ids back to them for whoever ran the ingest."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk
from streamlit.testing.v1 import AppTest

from ctae_core.io.dicom_writer import SeriesHeaderSpec
from ctae_core.io.path_map import path_map_file, read_path_map
from data_catalog import CatalogSettings, connect
from data_catalog.filters import ExportFilter
from data_catalog.runs import create_run
from jobs.export import export_snapshot
from tests.dicom_factory import identifying_header, phantom, write_phantom

REPO = Path(__file__).resolve().parents[2]
APP = str(REPO / "dashboard" / "app.py")
NAMES = ("Doeberg", "Johnathan", "99887766", "1945-03-17")
"""Pieces of the identifying folder and file names."""


def _ctae(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "jobs", "-v", *args],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def _identifying_tree(root: Path) -> None:
    """A patient-named archive: two CT series, an MR series, a NIfTI, a broken and a special file."""
    patient = root / "Doeberg^Johnathan_PID-99887766"
    for index, (study, uid) in enumerate([("CT_1945-03-17", "1.2.826.91"), ("CT_b", "1.2.826.92")]):
        files = write_phantom(
            patient / study, phantom(seed=index), header=identifying_header(series_uid=uid)
        )
        for number, path in enumerate(files):
            path.rename(path.with_name(f"Doeberg_Johnathan_{number:04d}.dcm"))
    write_phantom(
        patient / "MR_Johnathan", header=SeriesHeaderSpec(series_uid="1.2.826.93", modality="MR")
    )
    image = sitk.GetImageFromArray(phantom((20, 30, 30), seed=5))
    sitk.WriteImage(image, str(patient / "Doeberg_Johnathan_99887766.nii.gz"))
    (patient / "Doeberg_scan_notes.dcm").write_bytes(np.random.RandomState(3).bytes(900))
    os.mkfifo(patient / "Doeberg_pipe.dcm")


def _catalog_texts(settings: CatalogSettings) -> str:
    """Every value of every table, as DuckDB returns it (immune to on-disk compression)."""
    with connect(settings.catalog_path, read_only=True) as con:
        tables = [
            row[0]
            for row in con.execute("SELECT table_name FROM information_schema.tables").fetchall()
        ]
        frames = [con.execute(f'SELECT * FROM "{table}"').df() for table in tables]
    return " | ".join(str(v) for df in frames for col in df.columns for v in df[col].tolist())


def test_redacted_ingest_leaks_no_path_and_the_owner_can_map_ids_back(tmp_path):
    root = tmp_path / "Doeberg_archive"
    _identifying_tree(root)
    settings = CatalogSettings.resolve(
        tmp_path / "cat" / "c.duckdb", tmp_path / "cat" / "store", env={}
    )
    common = ["--catalog", str(settings.catalog_path)]
    ingest = _ctae(
        "ingest",
        str(root),
        *common,
        "--store",
        str(settings.store_dir),
        "--workers",
        "2",
        "--redact-paths",
    )
    assert ingest.returncode == 0, ingest.stderr
    assert "ingested 3" in ingest.stdout and "failed 3" in ingest.stdout  # MR, notes, FIFO
    with connect(settings.catalog_path) as con:
        create_run(con, "r1", "tiny", "{}")
    exports = []
    for fmt in ("csv", "txt", "parquet"):
        out = tmp_path / "exports" / f"list.{fmt}"
        snapshot = export_snapshot(settings, "r1", out, ExportFilter(), fmt, "admin")
        assert snapshot.manifest["row_count"] == 3
    parquet = pd.read_parquet(tmp_path / "exports" / "list.parquet")
    assert len(parquet) == 3 and set(parquet["source_path"]) == set(parquet["scan_id"])
    exports.append(parquet.to_csv().encode())
    exports += [p.read_bytes() for p in sorted((tmp_path / "exports").iterdir())]  # + manifests

    page = _dashboard_texts(settings)
    texts = {
        "catalog tables": _catalog_texts(settings).encode(),
        "ingest logs": (ingest.stdout + ingest.stderr).encode(),
        "dashboard": page.encode(),
        "exports": b"\n".join(exports),
    }
    wal = settings.catalog_path.with_name(settings.catalog_path.name + ".wal")
    blobs = [settings.catalog_path, *(p for p in settings.store_dir.rglob("*") if p.is_file())]
    blobs += [wal] if wal.exists() else []
    texts |= {str(p.relative_to(tmp_path)): p.read_bytes() for p in blobs}
    hits = {where: name for where, text in texts.items() for name in NAMES if name.encode() in text}
    assert hits == {}
    assert "not_dicom" in page and "not_a_regular_file" in page, page  # the page did render

    mapping = path_map_file(settings.store_dir)
    assert mapping.parent == settings.store_dir.parent  # beside the store, not inside
    assert stat.S_IMODE(mapping.stat().st_mode) == 0o600
    links = read_path_map(mapping)
    assert {link.source_path for link in links.values()} >= {
        "Doeberg^Johnathan_PID-99887766/CT_1945-03-17",
        "Doeberg^Johnathan_PID-99887766/Doeberg_Johnathan_99887766.nii.gz",
        "Doeberg^Johnathan_PID-99887766/Doeberg_pipe.dcm",
    }
    restored = tmp_path / "exports" / "admin.txt"
    snapshot = export_snapshot(settings, "r1", restored, ExportFilter(), "txt", "admin", mapping)
    assert snapshot.manifest["row_count"] == 3
    lines = sorted(restored.read_text().splitlines())
    assert lines[0] == f"{root}/Doeberg^Johnathan_PID-99887766/CT_1945-03-17"


def _dashboard_texts(settings: CatalogSettings) -> str:
    """Everything the Overview page sends to the browser, as text."""
    os.environ["CTAE_CATALOG"] = str(settings.catalog_path)
    try:
        at = AppTest.from_file(APP, default_timeout=30).run()
    finally:
        del os.environ["CTAE_CATALOG"]
    assert not at.exception, [e.value for e in at.exception]
    parts = [str(e.value) for e in (*at.markdown, *at.info, *at.warning, *at.caption, *at.metric)]
    parts += [frame.value.to_csv() for frame in at.dataframe]
    return "\n".join(parts)
