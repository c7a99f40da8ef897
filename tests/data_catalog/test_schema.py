from __future__ import annotations

import duckdb
import numpy as np
import pytest

from data_catalog import SCHEMA_VERSION, CatalogSettings, connect, ensure_schema
from data_catalog.schema import current_version

TABLES = {
    "scans", "ingest_errors", "runs", "splits", "train_history", "scores", "embeddings",
    "labels", "exports", "schema_version", "evaluations", "evaluation_bases", "job_runs", "scan_failures",
    "removed_scans",
}


def test_new_catalog_has_every_table_at_current_version(settings):
    with connect(settings.catalog_path, read_only=True) as con:
        tables = {row[0] for row in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        assert TABLES <= tables
        assert current_version(con) == SCHEMA_VERSION


def test_migration_is_idempotent():
    con = duckdb.connect(":memory:")
    assert ensure_schema(con) == SCHEMA_VERSION
    assert ensure_schema(con) == SCHEMA_VERSION
    assert con.execute("SELECT count(*) FROM schema_version").fetchone()[0] == SCHEMA_VERSION


def test_settings_precedence(tmp_path):
    env = {"CTAE_CATALOG": str(tmp_path / "env.duckdb")}
    assert CatalogSettings.resolve(tmp_path / "arg.duckdb", env=env).catalog_path.name == "arg.duckdb"
    from_env = CatalogSettings.resolve(env=env)
    assert from_env.catalog_path == (tmp_path / "env.duckdb").resolve()
    assert from_env.store_dir == (tmp_path / "store").resolve()


def test_v1_catalog_migrates_to_current_keeping_its_scores():
    from data_catalog.schema import MIGRATIONS

    con = duckdb.connect(":memory:")
    for statement in MIGRATIONS[1]:
        con.execute(statement)
    con.execute("INSERT INTO schema_version (version) VALUES (1)")
    con.execute("INSERT INTO scores (run_id, scan_id, split, mse_m) VALUES ('r', 's1', 'val', 0.25)")
    assert ensure_schema(con) == SCHEMA_VERSION
    row = con.execute(
        "SELECT mse_m, mse_m_z, latent_z, histogram_z, tissue_z, contrast_z, shape_z, noise_z, "
        "streak_z, integrity_z, outlier_score FROM scores"
    ).fetchall()
    assert row == [(0.25, *[None] * 10)]


def test_v2_outlier_scores_are_cleared_and_scans_await_measuring():
    from data_catalog.schema import MIGRATIONS

    con = duckdb.connect(":memory:")
    for version in (1, 2):
        for statement in MIGRATIONS[version]:
            con.execute(statement)
        con.execute("INSERT INTO schema_version (version) VALUES (?)", [version])
    con.execute("INSERT INTO scores (run_id, scan_id, split, mse_m, mse_m_z, outlier_score) "
                "VALUES ('r', 's1', 'val', 0.25, 1.5, 14.2)")
    con.execute("INSERT INTO scans (scan_id, source_kind, source_root, source_path, fingerprint, "
                "content_hash, spacing_mm, size_z, size_y, size_x, pixel_count, volume_path) "
                "VALUES ('s1', 'nifti', '/r', 'a.nii', 'f', 'h', 3, 2, 2, 2, 8, '/v/s1.npy')")
    assert ensure_schema(con) == SCHEMA_VERSION
    # Fisher's sum (v2) and the strongest evidence (v3) are different scales: not kept
    assert con.execute("SELECT mse_m_z, outlier_score FROM scores").fetchall() == [(1.5, None)]
    from data_catalog.scans import scans_without_acquisition

    assert scans_without_acquisition(con)["scan_id"].tolist() == ["s1"]


def _v3_catalog_file(path):
    """A catalog file left at schema v3, as ctae of stop 11 wrote it."""
    return _catalog_file_at(path, 3)


def _catalog_file_at(path, version: int) -> duckdb.DuckDBPyConnection:
    """A catalog file left at schema ``version``, as the ctae of that version wrote it."""
    from data_catalog.schema import MIGRATIONS

    con = duckdb.connect(str(path))
    for step in range(1, version + 1):
        for statement in MIGRATIONS[step]:
            con.execute(statement)
        con.execute("INSERT INTO schema_version (version) VALUES (?)", [step])
    return con


def test_v3_catalog_gains_job_processes_and_killed_jobs_become_interrupted(tmp_path):
    import subprocess
    import sys

    from jobs.runtime import interrupt_dead_jobs, this_process

    path = tmp_path / "v3.duckdb"
    con = _v3_catalog_file(path)
    con.execute("INSERT INTO job_runs (job_id, job, status) VALUES ('old', 'ingest', 'running')")
    con.close()
    with connect(path) as con:  # migrates on open
        assert current_version(con) == SCHEMA_VERSION
        assert con.execute("SELECT status, pid, host FROM job_runs").fetchall() == [
            ("running", None, None)
        ]
        dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True)
        from data_catalog.job_runs import start_job_run

        start_job_run(con, "score", {}, this_process(int(dead.stdout)))  # its process is gone
        gone = this_process()
        start_job_run(con, "train", {}, gone.__class__(gone.pid, gone.host, "1"))  # reused pid
        alive = start_job_run(con, "embed", {}, this_process())
        assert interrupt_dead_jobs(con) == 2
        rows = dict(con.execute("SELECT job, status FROM job_runs").fetchall())
    # a pre-v4 row carries no process to check: it is left as it was
    assert rows == {"ingest": "running", "score": "interrupted", "train": "interrupted",
                    "embed": "running"}
    assert alive


def test_v3_catalog_file_gains_the_false_alarm_rate_and_keeps_its_evaluations(tmp_path):
    path = tmp_path / "v3.duckdb"
    con = _v3_catalog_file(path)
    con.execute("INSERT INTO evaluations (run_id, method, outlier_type, auroc, precision_at_t) "
                "VALUES ('r', 'outlier_score', 'all', 0.95, 0.64)")
    con.close()
    con = duckdb.connect(str(path))
    assert ensure_schema(con) == SCHEMA_VERSION
    assert con.execute("SELECT auroc, precision_at_t, false_alarm_rate FROM evaluations").fetchall() \
        == [(0.95, 0.64, None)]
    assert current_version(con) == SCHEMA_VERSION


def test_v3_catalog_file_keeps_its_export_log_without_snapshots(tmp_path):
    con = _v3_catalog_file(tmp_path / "v3.duckdb")
    con.execute("INSERT INTO exports (export_id, who, run_id, filter_json, row_count, format) "
                "VALUES ('e1', 'hal', 'r', '{}', 12, 'csv')")
    assert ensure_schema(con) == SCHEMA_VERSION
    # an export from before v6 stays in the log, without a snapshot
    assert con.execute("SELECT export_id, row_count, content_hash, manifest_json FROM exports"
                       ).fetchall() == [("e1", 12, None, None)]
    assert con.execute("SELECT count(*) FROM export_items").fetchone()[0] == 0


def test_v7_catalog_file_keeps_its_measurements_gains_the_hottest_region_and_awaits_the_ring(tmp_path):
    # a scan measured at v7 keeps its noise and outline; v9 adds the ring it never measured, so
    # `ctae score` measures that scan again, and only until a ring (or NaN) is stored
    from data_catalog.scans import scans_without_acquisition, write_acquisition

    path = tmp_path / "v7.duckdb"
    con = _catalog_file_at(path, 7)
    for scan_id in ("s1", "s2"):
        con.execute("INSERT INTO scans (scan_id, source_kind, source_root, source_path, fingerprint, "
                    "content_hash, spacing_mm, size_z, size_y, size_x, pixel_count, volume_path, "
                    "noise_hu, body_edge_mm, body_profile, streak_contrast) VALUES (?, 'nifti', '/r', "
                    "?, ?, 'h', 3, 2, 2, 2, 8, '/v.npy', 12.5, 0.0, [1.0, 1.0], 4.2)",
                    [scan_id, f"{scan_id}.nii", scan_id])
    con.execute("INSERT INTO scores (run_id, scan_id, split, mse_m, outlier_score) "
                "VALUES ('r', 's1', 'val', 0.25, 7.5)")
    con.close()
    with connect(path) as con:  # migrates on open
        assert current_version(con) == SCHEMA_VERSION >= 9
        # (noise_hu was measured anew since v16: cleared too)
        assert con.execute("SELECT body_edge_mm, body_profile, ring_contrast, noise_hu FROM scans "
                           "WHERE scan_id = 's1'").fetchall() == [(0.0, [1.0, 1.0], None, None)]
        assert con.execute("SELECT outlier_score, ring_z FROM scores").fetchall() == [(7.5, None)]
        # v8: the hottest region and the local error, empty until the run is scored again
        assert con.execute("SELECT mse_m, hot_z, hot_x_mm, hot_volume_ml, local_error_hu, local_error_z "
                           "FROM scores").fetchall() == [(0.25, None, None, None, None, None)]
        con.execute("UPDATE scores SET hot_z = 4, hot_x_mm = 12.0, local_error_hu = 812.5")
        assert con.execute("SELECT hot_z, hot_x_mm, local_error_hu FROM scores").fetchall() == [(4, 12.0, 812.5)]
        assert scans_without_acquisition(con)["scan_id"].tolist() == ["s1", "s2"]
        write_acquisition(con, [("s1", 12.5, 0.0, [1.0, 1.0], 4.2, 9.5, 0.0),
                                ("s2", 12.0, 0.0, [1.0, 1.0], 4.0, float("nan"), 0.0)])
        assert scans_without_acquisition(con).empty
        rings = dict(con.execute("SELECT scan_id, ring_contrast FROM scans").fetchall())
    assert rings["s1"] == 9.5 and rings["s2"] != rings["s2"]  # NaN: measured, nothing to read


def _one_scored_scan_at(path, version: int, scan_fact: tuple[str, float], score_fact: tuple[str, float]):
    """A catalog file at schema ``version`` holding scan 's1' (fingerprint 'fp1', volume
    '/v.npy', 3 mm) with ``scan_fact`` and its score in run 'r' (outlier score 7.5) with
    ``score_fact``; each a (column, value) pair of that version."""
    con = _catalog_file_at(path, version)
    con.execute("INSERT INTO scans (scan_id, source_kind, source_root, source_path, fingerprint, "
                "content_hash, spacing_mm, size_z, size_y, size_x, pixel_count, volume_path, "
                f"{scan_fact[0]}) VALUES ('s1', 'dicom', '/r', 's1', 'fp1', 'h', 3, 2, 2, 2, 8, "
                "'/v.npy', ?)", [scan_fact[1]])
    con.execute(f"INSERT INTO scores (run_id, scan_id, split, mse_m, outlier_score, {score_fact[0]}) "
                "VALUES ('r', 's1', 'val', 0.25, 7.5, ?)", [score_fact[1]])
    con.close()
    return path


@pytest.mark.parametrize(("version", "scan_fact", "score_fact", "added", "added_z", "measured"), [
    # v10: metal away from bone; a scan from before keeps its row, lacks the measure (its
    # evidence is left out) and reads as changed to the next ingest, which measures it
    (9, ("body_edge_mm", 9.5), ("ring_z", 1.5), ("native_metal_mm3",), ("metal_z",), 0.0),
    # v11: dense objects on the skin and inside the body
    (10, ("native_metal_mm3", 120.0), ("metal_z", 2.5), ("skin_object_mm3", "inner_object_mm3"),
     ("skin_object_z", "inner_object_z"), 40.0),
    # v12: the longest dense object
    (11, ("skin_object_mm3", 80.0), ("skin_object_z", 1.5), ("longest_object_mm",), ("long_object_z",), 12.0),
    # v17: image noise on the acquired grid (the stored volume's noise_hu is kept); a NaN measured
    # there counts as measured and is not read again
    (16, ("noise_hu", 14.5), ("noise_z", 0.5), ("native_noise_hu",), (), float("nan")),
])
def test_older_catalog_file_gains_the_ingest_measures_and_reingests_the_scans_that_lack_them(
        tmp_path, version, scan_fact, score_fact, added, added_z, measured):
    from data_catalog.scans import INGEST_MEASURES, scan_fingerprints

    path = _one_scored_scan_at(tmp_path / f"v{version}.duckdb", version, scan_fact, score_fact)
    with connect(path) as con:  # migrates on open
        assert current_version(con) == SCHEMA_VERSION
        scan_cols, score_cols = ", ".join((scan_fact[0], *added)), ", ".join(("outlier_score", score_fact[0], *added_z))
        assert con.execute(f"SELECT {scan_cols} FROM scans").fetchall() == [(scan_fact[1], *[None] * len(added))]
        assert con.execute(f"SELECT {score_cols} FROM scores").fetchall() == [
            (7.5, score_fact[1], *[None] * len(added_z))]
        assert scan_fingerprints(con) == {"s1": ("", "/v.npy", 3.0)}
        # every other ingest measure present: the scan still reads as changed for lacking these
        others = [c for c in INGEST_MEASURES if c not in added and c != scan_fact[0]]
        con.execute("UPDATE scans SET " + ", ".join(f"{c} = 0.0" for c in others))
        assert scan_fingerprints(con) == {"s1": ("", "/v.npy", 3.0)}
        con.execute("UPDATE scans SET " + ", ".join(f"{c} = ?::DOUBLE" for c in added), [measured] * len(added))
        assert scan_fingerprints(con) == {"s1": ("fp1", "/v.npy", 3.0)}


@pytest.mark.parametrize("version", [12, 13])
def test_catalog_file_forgets_streaks_of_an_older_measure_and_the_next_score_measures_them_anew(
        tmp_path, version):
    # v13: streak_contrast searches the body's soft tissue instead of the air around it; v14: it
    # compares each plane's lines with the planes 6 mm away. An older value means another
    # measure, so it is cleared and the scan is listed for measuring
    from data_catalog.scans import scans_without_acquisition, write_acquisition

    path = _one_scored_scan_at(tmp_path / f"v{version}.duckdb", version, ("streak_contrast", 5.5),
                               ("streak_z", 0.4))
    with connect(path) as con:  # migrates on open
        con.execute("UPDATE scans SET body_profile = [1.0, 1.0], ring_contrast = 9.0, "
                    "field_edge_mm = 0.0")  # the rest measured
        assert current_version(con) == SCHEMA_VERSION
        assert con.execute("SELECT streak_contrast FROM scans").fetchall() == [(None,)]
        assert scans_without_acquisition(con)["scan_id"].tolist() == ["s1"]
        # a scan whose body holds no soft tissue to search stores NaN and is not listed again
        write_acquisition(con, [("s1", 10.0, 0.0, [1.0, 1.0], float("nan"), 9.0, 0.0)])
        assert scans_without_acquisition(con).empty


@pytest.mark.parametrize(("version", "cleared"), [
    (14, ("noise_hu", "ring_contrast", "streak_contrast")),
    (15, ("noise_hu", "ring_contrast")),
    (22, ("ring_contrast",)),
])
def test_catalog_file_forgets_the_older_measures_and_keeps_the_rest(tmp_path, version, cleared):
    # v15: ring_contrast reads only radii whose tissue reaches three quarters of the way round,
    # streak_contrast only planes with both neighbours; v16: noise_hu is a grouped median of the
    # whole-HU differences (continuous), no longer their plain median (in ~1 HU steps); v23:
    # ring_contrast reads the air around the body as well. Values of
    # an older measure are cleared and the scan listed for measuring, its other measures kept; a
    # noise or ring that cannot be measured is stored as NaN and not listed again
    from data_catalog.scans import scans_without_acquisition, write_acquisition

    measured = {"noise_hu": 12.5, "ring_contrast": 9.0, "streak_contrast": 5.5, "body_edge_mm": 3.0}
    path = _one_scored_scan_at(tmp_path / f"v{version}.duckdb", version, ("body_profile", None),
                               ("ring_z", 0.4))
    with duckdb.connect(str(path)) as raw:  # every measure taken at that version
        raw.execute("UPDATE scans SET body_profile = [1.0, 1.0], "
                    + ", ".join(f"{column} = {value}" for column, value in measured.items()))
    with connect(path) as con:  # migrates on open
        assert current_version(con) == SCHEMA_VERSION
        stored = con.execute(f"SELECT {', '.join(measured)}, body_profile FROM scans").fetchone()
        expected = [None if column in cleared else value for column, value in measured.items()]
        assert list(stored) == [*expected, [1.0, 1.0]]
        con.execute("UPDATE scans SET field_edge_mm = 0.0")  # v18's measure, taken
        assert scans_without_acquisition(con)["scan_id"].tolist() == ["s1"]
        write_acquisition(con, [("s1", float("nan"), 0.0, [1.0, 1.0], 5.5, float("nan"), 0.0)])
        assert all(np.isnan(v) for v in con.execute("SELECT noise_hu, ring_contrast FROM scans").fetchone())
        assert scans_without_acquisition(con).empty


def test_v17_catalog_file_keeps_its_measures_and_awaits_the_body_on_the_field_edge(tmp_path):
    # v18: field_edge_mm (the body next to padding outside the reconstruction circle) and its
    # evidence fov_z. Every older measure stays but the ring, measured anew since v23; the scan is
    # listed so that the next `ctae score` measures them from the stored volume, and a NaN stored
    # there is not listed again
    from data_catalog.scans import scans_without_acquisition, write_acquisition

    path = _one_scored_scan_at(tmp_path / "v17.duckdb", 17, ("body_edge_mm", 3.0), ("shape_z", 1.5))
    with duckdb.connect(str(path)) as raw:
        raw.execute("UPDATE scans SET body_profile = [1.0, 1.0], noise_hu = 12.5, "
                    "ring_contrast = 9.0, streak_contrast = 5.5")
    with connect(path) as con:  # migrates on open
        assert current_version(con) == SCHEMA_VERSION
        assert con.execute("SELECT body_edge_mm, noise_hu, ring_contrast, streak_contrast, field_edge_mm "
                           "FROM scans").fetchall() == [(3.0, 12.5, None, 5.5, None)]
        assert con.execute("SELECT outlier_score, shape_z, fov_z FROM scores").fetchall() == [(7.5, 1.5, None)]
        assert scans_without_acquisition(con)["scan_id"].tolist() == ["s1"]
        write_acquisition(con, [("s1", 12.5, 3.0, [1.0, 1.0], 5.5, 9.5, float("nan"))])
        assert con.execute("SELECT ring_contrast FROM scans").fetchone()[0] == 9.5
        assert np.isnan(con.execute("SELECT field_edge_mm FROM scans").fetchone()[0])
        assert scans_without_acquisition(con).empty


def _columns(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    return con.execute(
        "SELECT table_name, column_name, ordinal_position, data_type, column_default, is_nullable "
        "FROM information_schema.columns ORDER BY table_name, ordinal_position"
    ).fetchall()


def test_new_catalog_is_created_in_one_commit_and_matches_every_migrated_one(tmp_path):
    # a new file runs all migrations in one transaction; a file left at any older version
    # runs the ones it lacks: every path ends with the same tables, columns and versions
    from data_catalog.schema import MIGRATIONS

    fresh = duckdb.connect(str(tmp_path / "new.duckdb"))
    assert ensure_schema(fresh) == SCHEMA_VERSION
    expected = _columns(fresh)
    assert {row[0] for row in expected} >= TABLES
    assert fresh.execute("SELECT list(version ORDER BY version) FROM schema_version").fetchone()[0] \
        == sorted(MIGRATIONS) == list(range(1, SCHEMA_VERSION + 1))
    for version in range(1, SCHEMA_VERSION):
        con = _catalog_file_at(":memory:", version)
        assert ensure_schema(con) == SCHEMA_VERSION
        assert _columns(con) == expected, f"a v{version} file migrated differs from a new one"
        assert current_version(con) == SCHEMA_VERSION


def test_a_failing_migration_leaves_the_file_at_its_version(monkeypatch):
    from data_catalog import schema

    con = _catalog_file_at(":memory:", 8)
    broken = {**schema.MIGRATIONS, SCHEMA_VERSION: ["ALTER TABLE no_such_table ADD COLUMN x INTEGER"]}
    monkeypatch.setattr(schema, "MIGRATIONS", broken)
    try:
        ensure_schema(con)
    except duckdb.CatalogException:
        pass
    else:
        raise AssertionError("a migration of a missing table must fail")
    assert current_version(con) == 8
    assert "ring_contrast" not in {row[1] for row in _columns(con) if row[0] == "scans"}
