"""The only part of ctae_core that touches files."""

from __future__ import annotations

import importlib.abc
import sys


class _PydicomWithoutRequests(importlib.abc.MetaPathFinder):
    """Hide ``requests`` from pydicom's test-data downloader while it loads.

    pydicom 3.0 (``pydicom>=3.0,<4``, tests/ctae_core/test_io_imports.py) imports
    ``pydicom.data.download`` on ``import pydicom``, and that module tries ``import requests``
    only to fetch pydicom's own test files, falling back to urllib where it is missing:
    requests and urllib3 cost a one-series ``ctae ingest`` ~0.06-0.1 s of its start. Nothing
    else is affected: ``requests`` imports normally once pydicom has loaded.
    """

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name != "requests":
            return None
        loading = sys.modules.get("pydicom.data.download")
        if loading is not None and not hasattr(loading, "HAVE_REQUESTS"):
            raise ImportError("requests is not needed by pydicom's readers", name=name)
        return None


if not any(isinstance(finder, _PydicomWithoutRequests) for finder in sys.meta_path):
    sys.meta_path.insert(0, _PydicomWithoutRequests())
