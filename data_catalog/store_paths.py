"""The catalog's paths into the volume store (stored volumes, checkpoints, reconstructions,
anomaly maps: absolute paths, as each job wrote them), and moving them to where the store now is
(``jobs.store_moves``)."""

from __future__ import annotations

from pathlib import Path

import duckdb

from data_catalog.connection import transaction

STORE_PATH_COLUMNS = (("scans", "volume_path"), ("runs", "checkpoint_path"),
                      ("scores", "recon_path"), ("scores", "error_path"))  # fmt: skip
"""Every column that holds a path into a store."""


STORE_OF_VOLUME = "regexp_extract(volume_path, '^(.*)/volumes/[^/]+$', 1)"
"""SQL: the store folder of a stored volume (the folder above ``volumes/<scan_id>.npy``)."""


def recorded_stores(con: duckdb.DuckDBPyConnection) -> dict[str, list[str]]:
    """Each store folder the catalog's scans were ingested into (the folder above
    ``volumes/<scan_id>.npy``), with the stored volume paths under it."""
    rows = con.execute(
        f"SELECT {STORE_OF_VOLUME} AS store, volume_path FROM scans ORDER BY store, volume_path"
    ).fetchall()
    stores: dict[str, list[str]] = {}
    for store, path in rows:
        if store:
            stores.setdefault(store, []).append(path)
    return stores


def store_folders(con: duckdb.DuckDBPyConnection) -> list[Path]:
    """The store folders the catalog's scans were ingested into (``recorded_stores``' keys)."""
    rows = con.execute(
        f"SELECT DISTINCT {STORE_OF_VOLUME} AS store FROM scans ORDER BY store").fetchall()
    return [Path(store) for (store,) in rows if store]


def move_store_paths(con: duckdb.DuckDBPyConnection, old: str, new: str) -> int:
    """Rewrite every store path under folder ``old`` to lie under ``new`` instead, in one
    transaction; returns how many paths changed."""
    old, new = old.rstrip("/") + "/", new.rstrip("/") + "/"
    changed = 0
    with transaction(con):
        for table, column in STORE_PATH_COLUMNS:
            (count,), = con.execute(f"UPDATE {table} SET {column} = ? || substr({column}, ?) "
                                    f"WHERE starts_with({column}, ?)", [new, len(old) + 1, old]).fetchall()
            changed += count
    return changed
