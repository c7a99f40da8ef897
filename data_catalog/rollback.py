"""Ending a failed transaction without hiding why it failed."""

from __future__ import annotations

import duckdb


def rollback(con: duckdb.DuckDBPyConnection) -> None:
    """ROLLBACK the open transaction, as the error that ends it is raised. Where DuckDB has
    ended the transaction itself (a write that failed, e.g. on a full disk, aborts it), its
    ROLLBACK would raise "no transaction is active" in place of that error: nothing is done."""
    try:
        con.execute("ROLLBACK")
    except duckdb.Error:
        pass
