"""Fixtures of the dashboard tests: synthetic catalogs and an AppTest opener."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from dashboard.auth import USER
from data_catalog import CatalogSettings
from data_catalog.accounts import add_account, load_accounts, users_path
from data_catalog.session_tokens import issue_token
from jobs.synthetic_catalog import SyntheticSpec, build_synthetic_catalog

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")


def signed_in(catalog: Path, name: str) -> str:
    """A sign-in token for the account ``name``, as the sign-in form would issue it."""
    users = users_path(catalog)
    return issue_token(users, load_accounts(users)[name])


def build(settings: CatalogSettings, **spec) -> dict[str, float]:
    """Fill the test's catalog with a synthetic dataset."""
    return build_synthetic_catalog(settings, SyntheticSpec(**spec))


@pytest.fixture
def catalog(settings) -> CatalogSettings:
    """60 scans, run 'synthetic' with scores, embeddings, 2 reviewers' labels, 4 volume files."""
    build(settings)
    return settings


@pytest.fixture
def open_page(monkeypatch):
    """open_page(settings, page, reviewer=None, role="admin") → AppTest that has run the page
    once; with ``reviewer``, that account exists and is signed in (else: no accounts, the
    localhost single-user mode)."""

    def _open(
        settings: CatalogSettings, page: str, reviewer: str | None = None, role: str = "admin"
    ) -> AppTest:
        monkeypatch.setenv("CTAE_CATALOG", str(settings.catalog_path))
        at = AppTest.from_file(APP, default_timeout=30)
        if reviewer:
            add_account(users_path(settings.catalog_path), reviewer, role, "password-" + reviewer)
            at.session_state[USER] = signed_in(settings.catalog_path, reviewer)
        at.run()
        if page != "overview":
            at.switch_page(f"app_pages/{page}.py").run()
        assert not at.exception, [e.value for e in at.exception]
        return at

    return _open


def figures(at: AppTest) -> list[dict]:
    """The Plotly figures on the page, as JSON specs."""
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def options(at: AppTest) -> list[dict]:
    """The ECharts options on the page, as JSON."""
    return [json.loads(chart.proto.spec) for chart in at.get("echarts_chart")]


def values(axis) -> np.ndarray:
    """A trace's x or y values (Plotly sends numpy arrays base64-encoded)."""
    if isinstance(axis, dict):
        return np.frombuffer(base64.b64decode(axis["bdata"]), dtype=axis["dtype"])
    return np.asarray(axis if axis is not None else [])


def point_count(figure: dict) -> int:
    """Points over every trace of a figure."""
    return sum(len(values(trace.get("x"))) for trace in figure["data"])
