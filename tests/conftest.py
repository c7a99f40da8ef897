"""Fixtures shared by every test: tiny phantoms, a real DuckDB catalog in a temp folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from data_catalog import CatalogSettings, connect

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "real-ct"


@pytest.fixture
def rng() -> np.random.RandomState:
    return np.random.RandomState(2376609660)


@pytest.fixture
def phantom_hu(rng) -> np.ndarray:
    """(Z, Y, X) = (16, 32, 32) int16 HU phantom: air, a soft-tissue ellipsoid, a bone sphere."""
    z, y, x = np.ogrid[:16, :32, :32]
    vol = np.full((16, 32, 32), -1000, dtype=np.int16)
    vol[((z - 8) / 7) ** 2 + ((y - 16) / 13) ** 2 + ((x - 16) / 11) ** 2 <= 1] = 40
    vol[(z - 8) ** 2 + (y - 16) ** 2 + (x - 20) ** 2 <= 9] = 700
    return vol + rng.normal(0, 5, vol.shape).astype(np.int16)


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
