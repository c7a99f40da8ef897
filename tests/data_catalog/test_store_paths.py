"""The catalog's paths into its stores: which stores it names, and moving one of them."""

from __future__ import annotations

from data_catalog import connect
from data_catalog.store_paths import move_store_paths, recorded_stores
from jobs.synthetic_catalog import SyntheticSpec, build_synthetic_catalog


def test_moving_one_store_leaves_the_others_and_every_other_column(settings):
    build_synthetic_catalog(settings, SyntheticSpec(n_scans=12))
    store = str(settings.store_dir)
    with connect(settings.catalog_path) as con:
        con.execute("UPDATE scans SET volume_path = replace(volume_path, ?, '/mnt/archive/store') "
                    "WHERE scan_id IN (SELECT scan_id FROM scans ORDER BY scan_id LIMIT 3)", [store])
        stores = recorded_stores(con)
        assert {k: len(v) for k, v in stores.items()} == {store: 9, "/mnt/archive/store": 3}
        scans_before = con.execute("SELECT * EXCLUDE (volume_path) FROM scans ORDER BY scan_id").fetchall()
        # a sibling whose name starts alike is not under the store
        con.execute("UPDATE scores SET recon_path = ? WHERE scan_id = (SELECT min(scan_id) FROM scores)",
                    [store + "-old/runs/synthetic/recon/x.npy"])
        changed = move_store_paths(con, store, "/srv/ctae/store")
        assert changed == 9 + 11 + 12  # volumes, reconstructions (one elsewhere), maps
        assert {k: len(v) for k, v in recorded_stores(con).items()} == {"/srv/ctae/store": 9, "/mnt/archive/store": 3}
        (left,), = con.execute("SELECT count(*) FROM scores WHERE recon_path LIKE ?", [store + "-old/%"]).fetchall()
        assert left == 1
        assert con.execute("SELECT * EXCLUDE (volume_path) FROM scans ORDER BY scan_id").fetchall() == scans_before
