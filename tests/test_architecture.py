"""The layers stay honest: each package imports only what DESIGN.md allows."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {
    "ctae_core": {"duckdb", "streamlit", "data_catalog", "jobs", "dashboard"},
    "data_catalog": {"streamlit", "torch", "ctae_core", "jobs", "dashboard"},
    "dashboard": {"torch", "jobs"},
}
ONLY_IN_IO = {"pydicom", "SimpleITK"}


def imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_respects_layering(package):
    for path in (ROOT / package).rglob("*.py"):
        bad = imported_roots(path) & FORBIDDEN[package]
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}, which {package} must not"


def test_only_core_touches_sql_free_layers():
    """SQL lives only in data_catalog: no other package imports duckdb."""
    for package in ("ctae_core", "jobs", "dashboard"):
        for path in (ROOT / package).rglob("*.py"):
            assert "duckdb" not in imported_roots(path), f"{path.relative_to(ROOT)} imports duckdb"
