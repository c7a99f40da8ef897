"""kill -9 of ingest while its workers run (the long version over every job:
benchmarks/chaos_jobs.py): no worker outlives the parent by 5 s, and the next run marks the
killed runs `interrupted` and completes the catalog without a duplicate."""

from __future__ import annotations

import pytest

from tests.chaos_factory import catalog_facts, kill_at, run
from tests.conftest import SHARED_DATA

SERIES = SHARED_DATA / "dcm_qa_ct" / "In" / "GE"  # 28 slices of 512 x 512


def test_killed_ingests_leave_no_workers_and_the_next_run_completes(tmp_path):
    if not SERIES.is_dir():
        pytest.skip(f"real CT data not found at {SERIES}; it is present in CI")
    roots = []
    for k in range(8):  # eight inputs (one per root), as symlinks
        root = tmp_path / f"site{k}"
        root.mkdir()
        for path in SERIES.iterdir():
            (root / path.name).symlink_to(path)
        roots.append(str(root))
    catalog = tmp_path / "c.duckdb"
    args = ["ingest", *roots, "--catalog", str(catalog), "--workers", "2", "--no-progress"]
    kills = [kill_at("ingest", args, at_s, after_workers=True) for at_s in (0.0, 0.3)]
    assert [(k.killed, k.descendants >= 1, k.orphans) for k in kills] == [(True, True, [])] * 2
    done = run(*args)
    assert done.returncode == 0, done.stderr
    facts = catalog_facts(catalog)
    assert (facts["scans"], facts["scan_ids"], facts["sources"]) == (8, 8, 8)
    assert (facts["running_jobs"], facts["interrupted_jobs"]) == (0, 2)
