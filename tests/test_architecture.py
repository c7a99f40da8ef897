"""The layers stay honest: each package imports only what DESIGN.md allows, only ctae_core/io
touches DICOM and SimpleITK, the numeric core reads no files, and no two modules import each
other (directly or round a longer loop).

Every import counts, at module level or inside a function: a lazy import is still a
dependency.
"""

from __future__ import annotations

import ast
import textwrap
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("ctae_core", "data_catalog", "jobs", "dashboard")
FORBIDDEN = {
    "ctae_core": {"duckdb", "streamlit", "data_catalog", "jobs", "dashboard"},
    "data_catalog": {"streamlit", "torch", "ctae_core", "jobs", "dashboard"},
    "dashboard": {"torch", "jobs"},
}
ONLY_IN_IO = {"pydicom", "SimpleITK"}
IO = "ctae_core.io"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for package in PACKAGES for p in (ROOT / package).rglob("*.py")}


def imported_modules(source: str, known: set[str] | frozenset[str] = frozenset()) -> set[str]:
    """Every module ``source`` imports (absolute imports, anywhere in the file); ``from a import
    b`` counts as ``a.b`` where that is one of the ``known`` modules, else as ``a``."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                names.add(sub if sub in known else node.module)
    return names


def roots(names: set[str]) -> set[str]:
    return {name.split(".")[0] for name in names}


def import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports."""
    known = set(MODULES)
    return {
        name: {m for m in imported_modules(path.read_text(), known) if m in known and m != name}
        for name, path in MODULES.items()
    }


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (its modules in order), or None."""
    try:
        TopologicalSorter(graph).prepare()
    except CycleError as err:
        return list(err.args[1])
    return None


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_respects_layering(package):
    for path in (ROOT / package).rglob("*.py"):
        bad = roots(imported_modules(path.read_text())) & FORBIDDEN[package]
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}, which {package} must not"


def test_only_data_catalog_speaks_sql():
    """SQL lives only in data_catalog: no other package imports duckdb."""
    for package in ("ctae_core", "jobs", "dashboard"):
        for path in (ROOT / package).rglob("*.py"):
            assert "duckdb" not in roots(imported_modules(path.read_text())), f"{path.relative_to(ROOT)} imports duckdb"


def test_only_core_io_reads_dicom_or_uses_simpleitk():
    offenders = {
        name: sorted(roots(imported_modules(path.read_text())) & ONLY_IN_IO)
        for name, path in MODULES.items()
        if not (name == IO or name.startswith(IO + "."))
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_numeric_core_never_imports_io():
    offenders = {
        name: sorted(m for m in imports if m == IO or m.startswith(IO + "."))
        for name, imports in import_graph().items()
        if name.startswith("ctae_core") and not (name == IO or name.startswith(IO + "."))
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_no_import_cycles():
    cycle = find_cycle(import_graph())
    assert cycle is None, f"import cycle: {' -> '.join(cycle or [])}"


def test_the_guards_catch_what_they_guard():
    """Each rule above fails on a file that breaks it."""
    lazy_dicom = textwrap.dedent("""
        def read():
            from pydicom import dcmread
            return dcmread
    """)
    assert roots(imported_modules(lazy_dicom)) & ONLY_IN_IO == {"pydicom"}
    known = {"jobs.a", "jobs.b", "jobs.c"}
    assert imported_modules("from jobs import b\nimport jobs.c", known) == {"jobs.b", "jobs.c"}
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) is not None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
