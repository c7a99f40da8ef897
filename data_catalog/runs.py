"""Runs, their splits and training history; the scans available for training.

Every statement here is short: jobs open a connection, call one of these, and close it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import duckdb

from data_catalog.rollback import rollback
from data_catalog.scans import SCAN_ORDER

RUN_STATUSES = ("training", "trained", "failed")
_UPDATABLE = {
    "status", "checkpoint_path", "spacing_mm", "pad_size_z", "pad_size_y", "pad_size_x",
    "norm_mean", "norm_std", "epochs_done", "best_val_loss", "mean_baseline_val_mse",
    "config_json", "preset",
}


class RunError(ValueError):
    """A run is missing, or exists when a new one was asked for."""


@dataclass(frozen=True)
class TrainingScan:
    """A scan that can be trained on: where its int16 volume is and its stored geometry."""

    scan_id: str
    volume_path: str
    spacing_mm: float
    size_z: int
    size_y: int
    size_x: int


_TRAINING_SCANS = f"""
SELECT scan_id, volume_path, spacing_mm, size_z, size_y, size_x
FROM scans s ORDER BY {SCAN_ORDER}
"""


def training_scans(con: duckdb.DuckDBPyConnection) -> list[TrainingScan]:
    """Every ingested scan, in ``SCAN_ORDER`` (the split and the training order follow it)."""
    rows = con.execute(_TRAINING_SCANS).fetchall()
    return [TrainingScan(r[0], r[1], float(r[2]), int(r[3]), int(r[4]), int(r[5])) for r in rows]


def get_run(con: duckdb.DuckDBPyConnection, run_id: str) -> dict[str, Any] | None:
    """The run's row as a dict, or None."""
    cur = con.execute("SELECT * FROM runs WHERE run_id = ?", [run_id])
    row = cur.fetchone()
    if row is None:
        return None
    return dict(zip([d[0] for d in cur.description], row, strict=True))


def create_run(
    con: duckdb.DuckDBPyConnection, run_id: str, preset: str, config_json: str
) -> None:
    """Insert a new run in status ``training``.

    Raises:
        RunError: a run of that name exists already.
    """
    if get_run(con, run_id) is not None:
        raise RunError(
            f"run {run_id!r} exists already; pick another --run name, or add --resume to "
            "continue training it"
        )
    con.execute(
        "INSERT INTO runs (run_id, preset, status, config_json) VALUES (?, ?, 'training', ?)",
        [run_id, preset, config_json],
    )


def update_run(con: duckdb.DuckDBPyConnection, run_id: str, **fields: Any) -> None:
    """Set columns of a run (whitelisted names) and bump ``updated_at``."""
    bad = set(fields) - _UPDATABLE
    if bad:
        raise ValueError(f"cannot update runs columns {sorted(bad)}; allowed: {sorted(_UPDATABLE)}")
    if "status" in fields and fields["status"] not in RUN_STATUSES:
        raise ValueError(f"run status must be one of {RUN_STATUSES}, not {fields['status']!r}")
    if not fields:
        return
    assignments = ", ".join(f"{name} = ?" for name in fields)
    con.execute(
        f"UPDATE runs SET {assignments}, updated_at = current_timestamp WHERE run_id = ?",
        [*fields.values(), run_id],
    )


def write_splits(con: duckdb.DuckDBPyConnection, run_id: str, splits: dict[str, str]) -> None:
    """Store ``{scan_id: split}`` for a run, replacing any earlier split of that run."""
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute("DELETE FROM splits WHERE run_id = ?", [run_id])
        con.executemany(
            "INSERT INTO splits (run_id, scan_id, split) VALUES (?, ?, ?)",
            [[run_id, scan_id, split] for scan_id, split in sorted(splits.items())],
        )
    except BaseException:
        rollback(con)
        raise
    con.execute("COMMIT")


def read_splits(con: duckdb.DuckDBPyConnection, run_id: str) -> dict[str, str]:
    """``{scan_id: split}`` of a run; empty when it has none."""
    rows = con.execute(
        "SELECT scan_id, split FROM splits WHERE run_id = ? ORDER BY scan_id", [run_id]
    ).fetchall()
    return dict(rows)


def record_epoch(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    epoch: int,
    train_loss: float,
    val_loss: float | None,
    learning_rate: float,
    epoch_s: float,
    volumes_per_s: float,
) -> None:
    """Upsert one epoch's losses into ``train_history`` (re-running an epoch overwrites it);
    ``val_loss`` None (NULL): the epoch was not validated."""
    con.execute(
        "INSERT OR REPLACE INTO train_history (run_id, epoch, train_loss, val_loss, learning_rate, "
        "epoch_s, volumes_per_s) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [run_id, epoch, train_loss, val_loss, learning_rate, epoch_s, volumes_per_s],
    )


def train_history(con: duckdb.DuckDBPyConnection, run_id: str) -> list[dict[str, Any]]:
    """Per-epoch losses of a run, oldest first."""
    cur = con.execute(
        "SELECT epoch, train_loss, val_loss, learning_rate, epoch_s, volumes_per_s "
        "FROM train_history WHERE run_id = ? ORDER BY epoch",
        [run_id],
    )
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def drop_history_after(con: duckdb.DuckDBPyConnection, run_id: str, epoch: int) -> None:
    """Forget epochs after ``epoch`` (a resumed run re-trains them from its checkpoint)."""
    con.execute("DELETE FROM train_history WHERE run_id = ? AND epoch > ?", [run_id, epoch])
