from __future__ import annotations

from data_catalog import connect
from data_catalog.status import pipeline_status


def test_scores_without_the_outlier_score_are_not_done(settings):
    """A run scored before schema v2 has MSE_m and T but no outlier score: `ctae demo` must
    score it again (which only computes the evidence) rather than skip the stage."""
    with connect(settings.catalog_path) as con:
        con.execute(
            "INSERT INTO scans (scan_id, source_kind, source_root, source_path, fingerprint, "
            "content_hash, spacing_mm, size_z, size_y, size_x, pixel_count, volume_path) "
            "VALUES ('s1', 'nifti', '/src', 's1.nii', 'f', 'h', 3, 4, 4, 4, 64, '/v/s1.npy')")
        con.execute("INSERT INTO runs (run_id, status, config_json, threshold) "
                    "VALUES ('r', 'trained', '{}', 0.5)")
        con.execute("INSERT INTO scores (run_id, scan_id, split, mse_m) VALUES ('r', 's1', 'val', 0.2)")
        before = pipeline_status(con, "r")
        con.execute("UPDATE scores SET outlier_score = 3.1")
        after = pipeline_status(con, "r")
    assert (before.scored, before.with_outlier_score, before.scored_all) == (1, 0, False)
    assert (after.with_outlier_score, after.scored_all) == (1, True)
