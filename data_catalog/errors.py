"""The base of the catalog's errors: a file of the catalog (the DuckDB file, or the accounts file
beside it) that cannot be used now. Each message names the file and what to do; `ctae` prints
it without a traceback (``jobs.launch``), the dashboard shows it on the page."""

from __future__ import annotations


class CatalogError(Exception):
    """A catalog file cannot be used now; the message names it and what to do."""
