"""The files ctae keeps for a catalog, which nothing a user asks ctae to write may replace.

``ctae export --out catalog.duckdb`` (a slip of the shell's history) had written the CSV over
the catalog: every run, score, label and snapshot log was gone, and the export's own log entry
then failed on the CSV it had put there.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from data_catalog.accounts import lock_path, users_path
from data_catalog.journal import journal_path
from data_catalog.session_tokens import secret_path
from data_catalog.settings import CatalogSettings


def catalog_files(settings: CatalogSettings) -> dict[Path, str]:
    """Each file of the catalog's (whether it exists yet or not) -> what it holds."""
    catalog = settings.catalog_path
    journal = journal_path(catalog).resolve()
    users = users_path(catalog)
    return {
        catalog: "the catalog",
        Path(f"{catalog}.wal"): "the catalog's write-ahead log",
        journal: "the review journal (labels, sign-ins, audit)",
        Path(f"{journal}-wal"): "the review journal's write-ahead log",
        Path(f"{journal}-shm"): "the review journal's shared memory",
        users: "the dashboard's accounts",
        lock_path(users): "the lock of the dashboard's accounts",
        secret_path(users): "the dashboard's signing secret",
    }


def owned_by_catalog(settings: CatalogSettings, path: Path,
                     stores: Iterable[Path] = ()) -> str | None:
    """What of the catalog's ``path`` is (a file of ``catalog_files``, or in the store: the
    settings' or one of ``stores``, those the catalog records), else None."""
    path = path.expanduser().resolve()
    if what := catalog_files(settings).get(path):
        return what
    for store in (settings.store_dir, *stores):
        if path == store or store in path.parents:
            return f"in the volume store {store}"
    return None
