"""The ``scans`` and ``ingest_errors`` tables: typed writes and reads for ingestion.

Writers pass whole batches; each call is one transaction, so a killed job leaves either the
batch or nothing. Rows are keyed by ``scan_id`` / ``source_key``, so re-running a batch
replaces rows instead of duplicating them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import astuple, dataclass, fields
from typing import TYPE_CHECKING

import duckdb

from data_catalog.connection import CatalogError, transaction
from data_catalog.rollback import rollback

if TYPE_CHECKING:  # pandas costs 0.3 s of start-up; ingest never needs it
    import pandas as pd

CATALOG_ERRORS: tuple[type[BaseException], ...] = (duckdb.Error, CatalogError, OSError)
"""What opening or writing the catalog can raise, for jobs that must not import duckdb."""
SCAN_ORDER = "s.source_path, s.series_uid, s.scan_id"
"""How the jobs order a catalog's scans (``scans`` as ``s``) where the order shapes a result —
the seeded split, the training order, the evidence's cross-fitting folds, UMAP's input: by
where each scan lies under the folder it was ingested from and its series. Not by ``scan_id``,
which hashes that folder's absolute path, so that one archive (the demo's cohort) gives the
same runs wherever it sits; until stop 48 two demos in two folders drew two splits."""


@dataclass(frozen=True)
class ScanRecord:
    """One row of ``scans`` (see schema.py for each column's meaning). No patient facts."""

    scan_id: str
    source_kind: str
    source_root: str
    source_path: str
    series_uid: str | None
    fingerprint: str
    content_hash: str
    manufacturer: str | None
    model: str | None
    kernel: str | None
    slice_thickness_mm: float | None
    orig_size_z: int
    orig_size_y: int
    orig_size_x: int
    orig_spacing_z_mm: float
    orig_spacing_y_mm: float
    orig_spacing_x_mm: float
    orig_direction: list[float]
    gantry_tilt_deg: float
    missing_slices: int
    duplicate_slices: int
    reversed_slices: bool
    warnings: str
    spacing_mm: float
    size_z: int
    size_y: int
    size_x: int
    pixel_count: int
    hu_mean: float
    hu_std: float
    hu_min: float
    hu_max: float
    hu_p1: float
    hu_p99: float
    body_voxels: int
    metal_voxels: int
    hu_histogram: list[int]
    volume_path: str
    native_metal_mm3: float | None = None
    skin_object_mm3: float | None = None
    inner_object_mm3: float | None = None
    longest_object_mm: float | None = None
    native_noise_hu: float | None = None


@dataclass(frozen=True)
class IngestErrorRecord:
    """One row of ``ingest_errors``: an input that could not become a scan, and why."""

    source_key: str
    source_root: str
    source_path: str
    series_uid: str | None
    reason: str
    message: str


_SCAN_COLUMNS = [f.name for f in fields(ScanRecord)]
_UPSERT_SCAN = (
    f"INSERT INTO scans ({', '.join(_SCAN_COLUMNS)}, ingested_at) "
    f"VALUES ({', '.join('?' for _ in _SCAN_COLUMNS)}, current_timestamp)"
)
_ERROR_COLUMNS = [f.name for f in fields(IngestErrorRecord)]
_UPSERT_ERROR = (
    f"INSERT INTO ingest_errors ({', '.join(_ERROR_COLUMNS)}, recorded_at) "
    f"VALUES ({', '.join('?' for _ in _ERROR_COLUMNS)}, current_timestamp)"
)
DENSE_OBJECT_MEASURES = ("native_metal_mm3", "skin_object_mm3", "longest_object_mm")
"""The dense-object columns among ``INGEST_MEASURES`` (v10 metal, v11 dense objects, v12 the
longest dense object)."""
INGEST_MEASURES = (*DENSE_OBJECT_MEASURES, "native_noise_hu")
"""Columns measured at ingest on the acquired grid (the dense objects, v17 image noise): a scan
lacking one was ingested before it existed, and only its source files can give it."""
# such a scan gets an empty fingerprint, so that the next ingest reads it again
_FINGERPRINTS = ("SELECT scan_id, CASE WHEN "
                 + " OR ".join(f"{column} IS NULL" for column in INGEST_MEASURES)
                 + " THEN '' ELSE fingerprint END, volume_path, spacing_mm FROM scans")
_PLACES = "SELECT scan_id, source_kind, source_root, source_path, series_uid, fingerprint FROM scans"
_MOVE_SCAN = "UPDATE scans SET source_root = ?, source_path = ?, fingerprint = ? WHERE scan_id = ?"
_PRUNE_ERRORS = """
DELETE FROM ingest_errors
WHERE (EXISTS (SELECT 1 FROM unnest(?::VARCHAR[]) AS w(place)
               WHERE source_root = place
                  OR source_root || '/' || source_path = place
                  OR starts_with(source_root || '/' || source_path, rtrim(place, '/') || '/'))
       OR source_root IN (SELECT unnest(?::VARCHAR[])))
  AND source_key NOT IN (SELECT unnest(?::VARCHAR[]))
"""
_CLEAR_ERRORS = "DELETE FROM ingest_errors WHERE source_key IN (SELECT unnest(?::VARCHAR[]))"
_LIST_ERRORS = """
SELECT source_root, source_path, series_uid, reason, message, recorded_at
FROM ingest_errors ORDER BY reason, source_path
"""
_COUNT_SCANS = "SELECT count(*) FROM scans"
_DUPLICATES = """
SELECT content_hash, scan_id, source_root, source_path, series_uid
FROM scans
WHERE content_hash IN (SELECT content_hash FROM scans GROUP BY content_hash HAVING count(*) > 1)
ORDER BY content_hash, source_root, source_path, scan_id
"""
_COUNT_ERRORS = "SELECT reason, count(*) FROM ingest_errors GROUP BY reason ORDER BY reason"
_SCANS_TABLE = "SELECT * FROM scans ORDER BY source_root, source_path, scan_id"


SCORE_MEASURES = ("noise_hu", "body_edge_mm", "body_profile", "streak_contrast", "ring_contrast",
                  "field_edge_mm")
"""Columns `ctae score` measures on the stored volume (``write_acquisition``): a scan ingested
again keeps them while its stored volume is unchanged (the same ``content_hash``)."""
AcquisitionRow = tuple[str, float, float, list[float], float, float, float]
"""(scan_id, *SCORE_MEASURES) of one scan, as ``write_acquisition`` takes it."""
_KEPT_MEASURES = (f"SELECT scan_id, content_hash, {', '.join(SCORE_MEASURES)} FROM scans "
                  "WHERE scan_id IN (SELECT unnest(?::VARCHAR[])) AND body_profile IS NOT NULL")
_RESTORE_MEASURES = (f"UPDATE scans SET {', '.join(f'{c} = ?' for c in SCORE_MEASURES)} "
                     "WHERE scan_id = ? AND content_hash = ?")


def upsert_scans(con: duckdb.DuckDBPyConnection, records: Sequence[ScanRecord]) -> int:
    """Insert or replace scans by ``scan_id`` in one transaction; returns the row count. A
    replaced scan whose stored volume is unchanged keeps what `ctae score` measured on it
    (``SCORE_MEASURES``), so that nothing reads it as unmeasured until the next score."""
    if not records:
        return 0
    rows = [list(astuple(record)) for record in records]
    ids = [r.scan_id for r in records]
    con.execute("BEGIN TRANSACTION")
    try:
        kept = con.execute(_KEPT_MEASURES, [ids]).fetchall()
        # DuckDB checks an updated key against the index eagerly; delete-then-insert avoids it.
        con.execute("DELETE FROM scans WHERE scan_id IN (SELECT unnest(?::VARCHAR[]))", [ids])
        con.executemany(_UPSERT_SCAN, rows)
        if kept:  # only where the new row's content hash is the old one
            con.executemany(_RESTORE_MEASURES, [[*measures, scan_id, content_hash]
                                                for scan_id, content_hash, *measures in kept])
        con.execute("COMMIT")
    except Exception:
        rollback(con)
        raise
    return len(rows)


def scan_fingerprints(con: duckdb.DuckDBPyConnection) -> dict[str, tuple[str, str, float]]:
    """``scan_id`` → (fingerprint, volume_path, spacing_mm) of every scan: skip unchanged input
    (the fingerprint is empty for a scan lacking one of ``INGEST_MEASURES``: read it again)."""
    return {row[0]: (row[1], row[2], row[3]) for row in con.execute(_FINGERPRINTS).fetchall()}


def scan_places(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str, str, str, str | None, str]]:
    """(scan_id, source_kind, source_root, source_path, series_uid, fingerprint) of every scan:
    where each was found, to know it again after its folder moved."""
    return con.execute(_PLACES).fetchall()


def move_scans(con: duckdb.DuckDBPyConnection,
               moves: Sequence[tuple[str, str, str, str]]) -> None:
    """Give scans whose input moved, unchanged, their new place: (scan_id, source_root,
    source_path, fingerprint) each, in one transaction."""
    if moves:
        with transaction(con):
            con.executemany(_MOVE_SCAN, [[root, path, fingerprint, scan_id]
                                         for scan_id, root, path, fingerprint in moves])


def record_ingest_errors(
    con: duckdb.DuckDBPyConnection, records: Sequence[IngestErrorRecord]
) -> int:
    """Insert or replace failures by ``source_key`` in one transaction; returns the count."""
    if not records:
        return 0
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(
            "DELETE FROM ingest_errors WHERE source_key IN (SELECT unnest(?::VARCHAR[]))",
            [[r.source_key for r in records]],
        )
        con.executemany(_UPSERT_ERROR, [list(astuple(r)) for r in records])
        con.execute("COMMIT")
    except Exception:
        rollback(con)
        raise
    return len(records)


def clear_ingest_errors(con: duckdb.DuckDBPyConnection, source_keys: Iterable[str]) -> None:
    """Forget earlier failures of inputs that have now been ingested."""
    keys = list(source_keys)
    if keys:
        con.execute(_CLEAR_ERRORS, [keys])


def prune_ingest_errors(
    con: duckdb.DuckDBPyConnection,
    walked: Sequence[str],
    current_keys: Sequence[str],
    pseudonyms: Sequence[str] = (),
) -> int:
    """Forget failures inside the ``walked`` files and folders (absolute), whatever source
    folder they were recorded under, or under the ``pseudonyms`` of redacted source folders,
    that are not found now (fixed, moved, deleted, or found again under another folder): keys
    not in ``current_keys``, the inputs and refusals found now. Returns the count."""
    if not walked and not pseudonyms:
        return 0
    return con.execute(_PRUNE_ERRORS, [list(walked), list(pseudonyms), list(current_keys)]).fetchone()[0]


def redact_scan_paths(con: duckdb.DuckDBPyConnection, roots_by_scan: dict[str, str]) -> None:
    """Replace the source root and path of already-ingested scans by pseudonyms: the given
    root token and the scan id (``--redact-paths`` over an earlier plain ingest)."""
    if not roots_by_scan:
        return
    con.execute(
        "UPDATE scans SET source_root = m.root, source_path = scans.scan_id "
        "FROM (SELECT unnest(?::VARCHAR[]) AS scan_id, unnest(?::VARCHAR[]) AS root) m "
        "WHERE scans.scan_id = m.scan_id AND scans.source_path <> scans.scan_id",
        [list(roots_by_scan), list(roots_by_scan.values())],
    )


def list_ingest_errors(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Every recorded failure with its reason code and message, grouped by reason."""
    return con.execute(_LIST_ERRORS).df()


def scan_counts(con: duckdb.DuckDBPyConnection) -> dict[str, object]:
    """``{"scans": n, "ingest_errors": m, "errors_by_reason": {reason: count}}``."""
    by_reason = dict(con.execute(_COUNT_ERRORS).fetchall())
    return {
        "scans": con.execute(_COUNT_SCANS).fetchone()[0],
        "ingest_errors": sum(by_reason.values()),
        "errors_by_reason": by_reason,
    }


def duplicate_counts(con: duckdb.DuckDBPyConnection) -> tuple[int, int]:
    """How many scans share their stored voxels with another, in how many groups (what
    ``duplicate_scans`` lists, counted without pandas: ingest's summary reads it)."""
    (scans, groups), = con.execute(
        "SELECT coalesce(sum(n), 0), count(*) FROM (SELECT count(*) AS n FROM scans "
        "GROUP BY content_hash HAVING count(*) > 1)").fetchall()
    return int(scans), int(groups)


def duplicate_scans(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """The scans whose stored voxels are another scan's too (the same ``content_hash``): one
    series stored twice, under two places or two names. Columns content_hash, scan_id,
    source_root, source_path, series_uid; a group's rows together."""
    return con.execute(_DUPLICATES).df()


def scans_table(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """The whole ``scans`` table, ordered by source."""
    return con.execute(_SCANS_TABLE).df()


_WITHOUT_ACQUISITION = """
SELECT scan_id, volume_path, spacing_mm FROM scans
WHERE body_profile IS NULL OR noise_hu IS NULL OR ring_contrast IS NULL OR streak_contrast IS NULL
   OR field_edge_mm IS NULL
ORDER BY scan_id
"""


def scans_without_acquisition(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Scans whose acquisition (noise_hu, body_edge_mm, body_profile, streak_contrast,
    ring_contrast, field_edge_mm; NULL after ingest, ring_contrast also before v9 and v15,
    streak_contrast also before v13, v14 and v15, noise_hu before v16, whose measures changed,
    field_edge_mm before v18) was never measured — `ctae score` measures
    them: scan_id, volume_path, spacing_mm. A measured scan without a body has
    an empty profile and NaN values, so it is not measured again."""
    return con.execute(_WITHOUT_ACQUISITION).df()


_FORGET_MEASURES = f"UPDATE scans SET {', '.join(f'{c} = NULL' for c in SCORE_MEASURES)}"


def forget_acquisition(con: duckdb.DuckDBPyConnection) -> int:
    """Clear every scan's score-time measures (``SCORE_MEASURES``), as a schema migration whose
    measures changed does, so that the next `ctae score` measures them anew on the stored
    volumes (``benchmarks/bench_score_cli.py --remeasure`` times that). Returns the row count."""
    with transaction(con):
        return int(con.execute(_FORGET_MEASURES).fetchone()[0])


def write_acquisition(
    con: duckdb.DuckDBPyConnection,
    rows: Sequence[AcquisitionRow],
) -> int:
    """Set (scan_id, noise_hu, body_edge_mm, body_profile, streak_contrast, ring_contrast,
    field_edge_mm) of existing scans in one transaction (a noise, ring or streak not measurable is stored as NaN, not NULL,
    so it is not measured again). Returns the row count."""
    import pandas as pd

    if not rows:
        return 0
    frame = pd.DataFrame(rows, columns=["scan_id", *SCORE_MEASURES])
    with transaction(con):
        con.register("acq", frame)
        try:
            con.execute(
                "UPDATE scans SET noise_hu = coalesce(acq.noise_hu, 'NaN'::DOUBLE), "
                "body_edge_mm = acq.body_edge_mm, "
                "body_profile = acq.body_profile::DOUBLE[], "
                "streak_contrast = coalesce(acq.streak_contrast, 'NaN'::DOUBLE), "
                "ring_contrast = coalesce(acq.ring_contrast, 'NaN'::DOUBLE), "
                "field_edge_mm = coalesce(acq.field_edge_mm, 'NaN'::DOUBLE) "
                "FROM acq WHERE scans.scan_id = acq.scan_id"
            )
        finally:
            con.unregister("acq")
    return len(frame)
