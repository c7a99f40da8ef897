"""The review journal: sessions, reads only in a session, audit, absorption into the catalog
while and after another process holds it."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from data_catalog import connect
from data_catalog.absorb import pending_review_rows
from data_catalog.journal import open_journal
from data_catalog.schema import MIGRATIONS, SCHEMA_VERSION, ensure_schema
from data_catalog.sessions import (
    ReviewRefused,
    add_reads,
    adjudicate,
    audit_table,
    create_session,
    is_blinded,
    latest_reads,
    set_session_status,
)


def _session(catalog, **overrides) -> str:
    fields = dict(name="flagged", created_by="ada", run_id="r", source="flagged scans",
                  reads_per_scan=2, show_others=False, show_model=False,
                  queues={"bea": ["s1", "s2"], "cyd": ["s2", "s1"]})
    with open_journal(catalog) as j:
        return create_session(j, **(fields | overrides))


def _catalog_rows(catalog, sql):
    with connect(catalog, read_only=True) as con:
        return con.execute(sql).fetchall()


def hold_catalog(catalog) -> subprocess.Popen:
    """A second process holding the catalog read-write, as `ctae score` does while it writes."""
    code = (
        "import duckdb, sys\n"
        f"con = duckdb.connect({str(catalog)!r})\n"
        "print('locked', flush=True)\n"
        "sys.stdin.readline()\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_reads_only_in_an_open_session_on_assigned_scans(settings):
    catalog = settings.catalog_path
    sid = _session(catalog)
    with open_journal(catalog) as j:
        add_reads(j, session_id=sid, reviewer="bea", scan_ids=["s1"], verdict="outlier",
                  causes=["metal implant"], note="hip")
        add_reads(j, session_id=sid, reviewer="bea", scan_ids=["s1"], verdict="unsure")
    refusals = [
        dict(session_id="nope", reviewer="bea", scan_ids=["s1"], verdict="inlier"),
        dict(session_id=sid, reviewer="bea", scan_ids=["s3"], verdict="inlier"),
        dict(session_id=sid, reviewer="dan", scan_ids=["s1"], verdict="inlier"),
        dict(session_id=sid, reviewer="bea", scan_ids=["s1"], verdict="maybe"),
        dict(session_id=sid, reviewer="bea", scan_ids=["s1"], verdict="inlier", causes=["x"]),
    ]
    for bad in refusals:
        with pytest.raises(ReviewRefused), open_journal(catalog) as j:
            add_reads(j, **bad)
    with open_journal(catalog) as j:
        set_session_status(j, sid, "closed", "ada")
    with pytest.raises(ReviewRefused, match="closed"), open_journal(catalog) as j:
        add_reads(j, session_id=sid, reviewer="cyd", scan_ids=["s1"], verdict="inlier")
    with open_journal(catalog, write=False) as j:
        reads = latest_reads(j, sid)
        log = audit_table(j)
    assert reads[["scan_id", "reviewer", "verdict"]].values.tolist() == [["s1", "bea", "unsure"]]
    assert list(log["action"]) == ["close_session", "label", "label", "create_session"]
    second = log.iloc[1]
    assert '"verdict": "outlier"' in second["before"] and '"verdict": "unsure"' in second["after"]


def test_a_read_sent_twice_with_its_id_is_recorded_once(settings):
    catalog = settings.catalog_path
    sid = _session(catalog)
    read = dict(session_id=sid, reviewer="bea", scan_ids=["s1"], verdict="outlier",
                label_ids=["18c2f0a1b2-4242"])
    for _ in range(2):  # the browser sends it again, e.g. after a reload
        with open_journal(catalog) as j:
            assert add_reads(j, **read) == ["18c2f0a1b2-4242"]
    with open_journal(catalog, write=False) as j:
        reads = latest_reads(j, sid)
        log = audit_table(j)
    assert reads[["scan_id", "reviewer", "label_id"]].values.tolist() == [
        ["s1", "bea", "18c2f0a1b2-4242"]]
    assert list(log["action"]) == ["label", "create_session"]  # one label, not two
    for bad, why in (({"reviewer": "cyd"}, "another read"), ({"scan_ids": ["s2"]}, "another read"),
                     ({"label_ids": ["x'; --"]}, "letters, digits"),
                     ({"label_ids": ["18c2f0a1b2-1", "18c2f0a1b2-2"]}, "give one each")):
        with pytest.raises(ReviewRefused, match=why), open_journal(catalog) as j:
            add_reads(j, **(read | bad))


def test_blinding_follows_open_sessions(settings):
    catalog = settings.catalog_path
    sid = _session(catalog)
    _session(catalog, name="open book", show_others=True, show_model=True,
             queues={"dan": ["s1"]})
    with open_journal(catalog) as j:
        assert is_blinded(j, "bea") and not is_blinded(j, "dan") and not is_blinded(j, "ada")
        set_session_status(j, sid, "closed", "ada")
        assert not is_blinded(j, "bea")


def test_labels_are_durable_while_a_job_holds_the_catalog_and_absorbed_after(settings):
    catalog = settings.catalog_path
    sid = _session(catalog)
    holder = hold_catalog(catalog)
    try:
        started = time.perf_counter()
        with open_journal(catalog) as j:
            add_reads(j, session_id=sid, reviewer="bea", scan_ids=["s1", "s2"], verdict="outlier")
        assert time.perf_counter() - started < 0.3  # acknowledged without waiting for the job
        assert len(pending_review_rows(catalog)["labels"]) == 2
    finally:
        holder.stdin.close()
        holder.wait(timeout=10)
    # a reader (the dashboard, `ctae export`) sees them before the catalog has absorbed them
    assert _catalog_rows(catalog, "SELECT scan_id, verdict FROM labels ORDER BY scan_id") == [
        ("s1", "outlier"), ("s2", "outlier")]
    assert _catalog_rows(catalog, "SELECT count(*) FROM catalog.main.labels") == [(0,)]  # the table
    with connect(catalog):  # the next read-write open (a job's or the dashboard's) absorbs
        pass
    with open_journal(catalog) as j:
        adjudicate(j, session_id=sid, scan_id="s1", verdict="inlier", causes=[], note=None,
                   adjudicator="ada")
    with connect(catalog):
        pass
    assert _catalog_rows(catalog, "SELECT scan_id, reviewer, verdict, session_id FROM labels "
                         "ORDER BY scan_id") == [("s1", "bea", "outlier", sid),
                                                ("s2", "bea", "outlier", sid)]
    assert _catalog_rows(catalog, "SELECT scan_id, verdict FROM adjudications") == [("s1", "inlier")]
    assert _catalog_rows(catalog, "SELECT count(*) FROM session_assignments") == [(4,)]
    assert _catalog_rows(catalog, "SELECT count(*) FROM audit_log") == [(4,)]
    assert "labels" not in pending_review_rows(catalog)  # nothing pending: no frame made
    with connect(catalog):  # absorbing twice copies nothing twice
        pass
    assert _catalog_rows(catalog, "SELECT count(*) FROM labels") == [(2,)]


def test_v3_catalog_migrates_to_v5_keeping_its_labels():
    con = duckdb.connect(":memory:")
    for version in (1, 2, 3):
        for statement in MIGRATIONS[version]:
            con.execute(statement)
        con.execute("INSERT INTO schema_version (version) VALUES (?)", [version])
    con.execute("INSERT INTO labels (label_id, scan_id, reviewer, verdict, causes) "
                "VALUES ('l1', 's1', 'alice', 'outlier', ['metal implant'])")
    assert ensure_schema(con) == SCHEMA_VERSION >= 5
    assert con.execute("SELECT reviewer, verdict, session_id FROM labels").fetchall() == [
        ("alice", "outlier", None)]
    tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables")
              .fetchall()}
    assert {"review_sessions", "session_assignments", "adjudications", "audit_log"} <= tables


def test_final_verdict_overrides_the_reads_in_scan_table_and_explorer(settings):
    from data_catalog import views
    from tests.dashboard.conftest import build

    build(settings, with_labels=False)
    catalog = settings.catalog_path
    sid = _session(catalog, queues={"bea": ["syn0000001"], "cyd": ["syn0000001"]})
    with open_journal(catalog) as j:
        add_reads(j, session_id=sid, reviewer="bea", scan_ids=["syn0000001"], verdict="outlier",
                  causes=["metal implant"])
        add_reads(j, session_id=sid, reviewer="cyd", scan_ids=["syn0000001"], verdict="inlier")
    with connect(catalog, read_only=True) as con:
        row = views.scan_table(con, "synthetic").set_index("scan_id").loc["syn0000001"]
        assert (row["label"], bool(row["disagree"]), row["n_reviewers"]) == ("inlier", True, 2)
    with open_journal(catalog) as j:  # not yet absorbed: still the verdict everywhere
        adjudicate(j, session_id=sid, scan_id="syn0000001", verdict="outlier",
                   causes=["metal implant"], note=None, adjudicator="ada")
    for absorb_first in (False, True):
        if absorb_first:
            with connect(catalog):
                pass
        with connect(catalog, read_only=True) as con:
            row = views.scan_table(con, "synthetic").set_index("scan_id").loc["syn0000001"]
            explorer = views.explorer_scans(con, "synthetic").set_index("scan_id")
        assert (row["label"], row["causes"]) == ("outlier", "metal implant")
        assert explorer.loc["syn0000001", "label"] == "outlier"


READ_ONLY_SHARE = """
import sys
from data_catalog.journal import JournalNotWritableError, open_journal
catalog = sys.argv[1]
with open_journal(catalog, write=False) as j:
    print(j.execute("SELECT count(*) FROM labels").fetchone()[0])
try:
    with open_journal(catalog) as j:
        pass
except JournalNotWritableError as err:
    print(err)
"""


@pytest.mark.parametrize("with_journal", [False, True])
def test_a_journal_on_a_read_only_share_is_read_as_it_is_and_a_write_says_why(tmp_path, with_journal):
    # a dashboard on a share this user may not write shows the catalog's pages; the review
    # pages read the journal as it is (or an empty one), and a write names the folder
    import os

    share = tmp_path / "share"
    share.mkdir()
    catalog = share / "catalog.duckdb"
    if with_journal:
        with open_journal(catalog) as j:
            j.execute("INSERT INTO labels (label_id, scan_id, reviewer, verdict, causes, session_id, "
                      "created_at) VALUES ('l1', 's1', 'ann', 'outlier', '[]', 'x', '2026-12-07')")
    share.chmod(0o555)
    try:
        prefix = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search"] if os.geteuid() == 0 else []
        done = subprocess.run([*prefix, sys.executable, "-c", READ_ONLY_SHARE, str(catalog)],
                              capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
        assert done.returncode == 0, done.stderr
        count, said = done.stdout.splitlines()
        assert count == ("1" if with_journal else "0")
        assert said.startswith(f"{share / 'catalog.review.sqlite'}: the review journal cannot be opened here (")
        assert "serve the dashboard where it is, or copy the catalog with its store" in said
        assert sorted(p.name for p in share.iterdir()) == (
            ["catalog.review.sqlite"] if with_journal else [])  # nothing written beside it
    finally:
        share.chmod(0o755)
