"""The scans table's writes on a real catalog file: ingesting a scan again keeps what `ctae
score` measured on its stored volume while that volume is unchanged."""

from __future__ import annotations

from dataclasses import replace

from data_catalog import connect
from data_catalog.scans import (
    ScanRecord,
    forget_acquisition,
    scans_without_acquisition,
    upsert_scans,
    write_acquisition,
)


def _record(content_hash: str = "h1") -> ScanRecord:
    return ScanRecord(
        scan_id="s1", source_kind="dicom", source_root="/r", source_path="a", series_uid="1.2",
        fingerprint="fp1", content_hash=content_hash, manufacturer="SIEMENS", model="M",
        kernel="B70f", slice_thickness_mm=3.0, orig_size_z=10, orig_size_y=8, orig_size_x=8,
        orig_spacing_z_mm=3.0, orig_spacing_y_mm=1.0, orig_spacing_x_mm=1.0,
        orig_direction=[1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0], gantry_tilt_deg=0.0, missing_slices=0,
        duplicate_slices=0, reversed_slices=False, warnings="", spacing_mm=3.0, size_z=10,
        size_y=3, size_x=3, pixel_count=90, hu_mean=0.0, hu_std=1.0, hu_min=-1000.0,
        hu_max=100.0, hu_p1=-1000.0, hu_p99=90.0, body_voxels=40, metal_voxels=0,
        hu_histogram=[0, 1], volume_path="/v.npy", native_metal_mm3=0.0, skin_object_mm3=0.0,
        inner_object_mm3=0.0, longest_object_mm=0.0,
    )


def _measures(con) -> tuple:
    return con.execute("SELECT noise_hu, body_edge_mm, body_profile, streak_contrast, ring_contrast, "
                       "field_edge_mm FROM scans").fetchone()


def test_a_scan_ingested_again_keeps_its_score_time_measures_while_its_volume_is_unchanged(tmp_path):
    with connect(tmp_path / "c.duckdb") as con:
        upsert_scans(con, [_record()])
        assert scans_without_acquisition(con)["scan_id"].tolist() == ["s1"]
        write_acquisition(con, [("s1", 12.5, 0.0, [1.0, 0.9], 11.0, 8.0, 42.0)])
        # the same stored volume (its folder ingested again, a new file name): the measures stay
        upsert_scans(con, [replace(_record(), source_path="b", fingerprint="fp2")])
        assert _measures(con) == (12.5, 0.0, [1.0, 0.9], 11.0, 8.0, 42.0)
        assert con.execute("SELECT source_path, fingerprint FROM scans").fetchone() == ("b", "fp2")
        assert scans_without_acquisition(con).empty
        # another stored volume: what was measured on the old one is gone, to be measured anew
        upsert_scans(con, [_record(content_hash="h2")])
        assert _measures(con) == (None, None, None, None, None, None)
        assert scans_without_acquisition(con)["scan_id"].tolist() == ["s1"]


def test_forgetting_the_acquisition_leaves_every_scan_to_be_measured_anew(tmp_path):
    with connect(tmp_path / "c.duckdb") as con:
        upsert_scans(con, [_record(), replace(_record(), scan_id="s2", source_path="b", fingerprint="fp2")])
        write_acquisition(con, [("s1", 12.5, 0.0, [1.0, 0.9], 11.0, 8.0, 42.0),
                                ("s2", 9.0, 3.0, [1.0, 1.1], 6.0, 5.0, 0.0)])
        assert scans_without_acquisition(con).empty
        assert forget_acquisition(con) == 2
        assert con.execute("SELECT count(*) FROM scans WHERE noise_hu IS NULL AND body_edge_mm IS NULL "
                           "AND body_profile IS NULL AND streak_contrast IS NULL "
                           "AND ring_contrast IS NULL AND field_edge_mm IS NULL").fetchone() == (2,)
        assert scans_without_acquisition(con)["scan_id"].tolist() == ["s1", "s2"]
        assert con.execute("SELECT kernel FROM scans WHERE scan_id = 's2'").fetchone() == ("B70f",)
