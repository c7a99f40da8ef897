"""A small fuzz of ingest over mutated real files (the long one: benchmarks/fuzz_ingest.py):
the job neither fails nor hangs, every mutant is ingested or listed with a reason, and the
good series beside them come out exactly as in a clean run."""

from __future__ import annotations

import numpy as np
import pytest

from data_catalog import CatalogSettings, connect
from jobs.ingest import run_ingest
from tests.fuzz_factory import (
    REAL,
    build_tree,
    count_outcomes,
    ingest_tree,
    read_results,
    restore_permissions,
)


def test_thirty_mutants_beside_good_series_are_each_ingested_or_listed(tmp_path):
    if not REAL.is_dir():
        pytest.skip(f"real CT data not found at {REAL}; it is present in CI")
    clean = tmp_path / "clean"
    build_tree(clean, np.random.default_rng(0), 0, 0, series_mutant=False)
    settings = CatalogSettings.resolve(tmp_path / "clean.duckdb", tmp_path / "store", env={})
    assert run_ingest([clean], settings, workers=1, progress=False).ingested == 2
    with connect(settings.catalog_path, read_only=True) as con:
        expected = dict(con.execute("SELECT source_path, content_hash FROM scans").fetchall())

    tree = tmp_path / "fuzz"
    mutants = build_tree(tree, np.random.default_rng(16), n_files=24, n_special=5)
    try:
        code, output = ingest_tree(tree, timeout_s=240)
    finally:
        restore_permissions(tree)
    assert code == 0, output
    result = read_results(tree, mutants)
    outcomes = count_outcomes([result])
    assert len(mutants) == 30 and outcomes["unlisted"] == 0, result.outcomes
    assert result.job_status == ["done"]
    assert result.good_hashes == expected  # same HU, bit for bit
