"""The only part of ctae_core that touches files."""

from __future__ import annotations

import importlib.abc
import sys


class _PydicomWithoutRequests(importlib.abc.MetaPathFinder):
    """Hide ``requests`` from pydicom's test-data downloader while it loads.

    pydicom 3.0 (``pydicom>=3.0,<4``, tests/ctae_core/test_io_imports.py) imports
    ``pydicom.data.download`` on ``import pydicom``, and that module tries ``import requests``
    only to fetch pydicom's own test files, falling back to urllib where it is missing:
    requests and urllib3 cost a one-series ``ctae ingest`` ~0.06-0.1 s of its start. Only that
    module's import is refused (by the importing frame, so another thread importing requests
    meanwhile gets it), and ``requests`` imports normally everywhere else.
    """

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name == "requests" and _importer() == DOWNLOADER:
            raise ImportError("requests is not needed by pydicom's readers", name=name)
        return None


DOWNLOADER = "pydicom.data.download"


def _importer() -> str | None:
    """The module whose code asked for the import running in this thread (not importlib's)."""
    frame = sys._getframe(1)
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        if module != __name__ and not module.startswith(("importlib", "_frozen_importlib")):
            return module
        frame = frame.f_back
    return None


if not any(isinstance(finder, _PydicomWithoutRequests) for finder in sys.meta_path):
    sys.meta_path.insert(0, _PydicomWithoutRequests())
