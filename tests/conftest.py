"""Fixtures shared by every test: tiny phantoms, a real DuckDB catalog in a temp folder."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

from ctae_core.phantoms import torso
from data_catalog import CatalogSettings, connect

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "real-ct"


@pytest.fixture(autouse=True)
def _one_torch_thread_per_xdist_worker() -> None:
    """Under pytest-xdist (``scripts/test.sh`` runs two workers) a test's own torch work
    runs on one thread: two workers that each start a thread per core oversubscribe the cores
    (one 21 s test took 106 s). Jobs run in a test still choose their count from the free cores."""
    if os.environ.get("PYTEST_XDIST_WORKER") and "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)


@pytest.fixture
def rng() -> np.random.RandomState:
    return np.random.RandomState(2376609660)


@pytest.fixture
def phantom_hu() -> np.ndarray:
    """(Z, Y, X) = (16, 32, 32) int16 HU torso: air, soft tissue, a bone rod, noise of 5 HU."""
    return torso((16, 32, 32), np.random.default_rng(2376609660), noise_sd_hu=5.0)


@pytest.fixture
def settings(tmp_path) -> CatalogSettings:
    """A fresh catalog file and store in a temp folder (the real embedded DuckDB, not a mock)."""
    settings = CatalogSettings.resolve(tmp_path / "catalog.duckdb", tmp_path / "store", env={})
    with connect(settings.catalog_path):
        pass
    return settings


@pytest.fixture
def shared_data() -> Path:
    """../shared/data/real-ct; skipped with a reason where it is absent (never in CI)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real CT data not found at {SHARED_DATA}; it is present in CI")
    return SHARED_DATA
