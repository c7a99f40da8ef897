"""Sign-in, roles, review sessions and labelling on My reviews (AppTest on a real catalog)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from dashboard.auth import USER
from data_catalog import connect
from data_catalog.accounts import add_account, users_path
from data_catalog.journal import open_journal
from data_catalog.sessions import add_reads, audit_table, create_session, latest_reads
from tests.dashboard.conftest import APP, signed_in
from tests.data_catalog.test_review_journal import hold_catalog


@pytest.fixture
def team(catalog):
    """Accounts ada (admin), bea and cyd (reviewers), and a blinded double-read session."""
    path = users_path(catalog.catalog_path)
    for name, role in (("ada", "admin"), ("bea", "reviewer"), ("cyd", "reviewer")):
        add_account(path, name, role, f"pw-{name}-123")
    with open_journal(catalog.catalog_path) as j:
        sid = create_session(
            j, name="double", created_by="ada", run_id="synthetic", source="test",
            reads_per_scan=2, show_others=False, show_model=False,
            queues={"bea": ["syn0000003", "syn0000001"], "cyd": ["syn0000001", "syn0000003"]})
    return catalog, sid


def _app(settings, monkeypatch) -> AppTest:
    monkeypatch.setenv("CTAE_CATALOG", str(settings.catalog_path))
    return AppTest.from_file(APP, default_timeout=30)


def _frame(at: AppTest, column: str, nth: int = 0) -> pd.DataFrame:
    """The nth table on the page that has ``column``."""
    return [d.value for d in at.dataframe if column in d.value.columns][nth]


def _sign_in(at: AppTest, name: str, password: str) -> AppTest:
    at.run()
    at.text_input(key="sign_in_name").input(name)
    at.text_input(key="sign_in_password").input(password)
    return at.button[0].click().run()


def test_wrong_password_is_refused_and_right_one_signs_in(team, monkeypatch):
    settings, _ = team
    at = _sign_in(_app(settings, monkeypatch), "bea", "pw-cyd-123")
    assert "Wrong user name or password" in at.error[0].value
    assert USER not in at.session_state and not at.title
    at = _sign_in(_app(settings, monkeypatch), "bea", "pw-bea-123")
    assert not at.exception and at.title[0].value == "My reviews"


def test_blinded_reviewer_reaches_only_their_queue(team, monkeypatch):
    settings, _ = team
    at = _app(settings, monkeypatch)
    at.session_state[USER] = signed_in(settings.catalog_path, "bea")
    at.run()
    assert at.title[0].value == "My reviews"
    for page in ("team", "sessions", "audit", "export", "explorer", "viewer"):
        with pytest.raises(ValueError, match="Known pages: .*my_reviews.py'\\]"):
            at.switch_page(f"app_pages/{page}.py")  # not in bea's navigation at all
    pane = _pane(at)  # the pane the browser draws: only bea's queue, nobody's reads, no model
    assert [i["id"] for i in pane["items"]] == ["syn0000003", "syn0000001"] and pane["start"] == 0
    assert all(i["read"] is None and not i["others"] and not i["suggested"] and "model" not in i
               for i in pane["items"])
    assert not any("Model:" in c.value for c in at.caption)  # the model's verdict is hidden
    assert not at.image  # the pane shows the middle slices; the server draws none
    slider = at.slider(key="mr_z_syn0000003")
    slider.set_value(slider.value + 3).run()  # another axial slice, drawn by the server
    assert at.image[0].proto.imgs[0].caption == f"axial slice {slider.value} of {int(slider.max) + 1}"


def _pane(at: AppTest) -> dict:
    """The arguments the page gave the browser's review pane on its last run."""
    return json.loads(at.get("component_instance")[0].proto.json_args)


def test_browser_pane_labels_are_durable_before_acknowledged_and_counted_once(team, monkeypatch):
    settings, sid = team
    pending = {"pending": [
        {"id": "18c2f0a1b2-0001", "scan": "syn0000003", "verdict": "outlier",
         "causes": ["metal implant"], "note": "hip"},
        {"id": "18c2f0a1b2-0002", "scan": "syn0000009", "verdict": "inlier", "causes": []},
    ], "at": "syn0000001"}
    at = _app(settings, monkeypatch)
    at.session_state[USER] = signed_in(settings.catalog_path, "bea")
    at.run()  # the page is open when the job starts
    holder = hold_catalog(settings.catalog_path)
    try:
        for reload in (False, True):  # a reload sends the unacknowledged labels again
            if reload:
                at = _app(settings, monkeypatch)
                at.session_state[USER] = signed_in(settings.catalog_path, "bea")
            at.session_state[f"mr_pane_{sid}"] = pending
            at.run()
            assert not at.exception
            acks = _pane(at)["acks"]
            assert acks["18c2f0a1b2-0001"] == ""  # durable: in the journal
            assert "not in bea's queue" in acks["18c2f0a1b2-0002"]
            with open_journal(settings.catalog_path, write=False) as j:
                reads = latest_reads(j, sid, "bea")
            assert reads[["scan_id", "verdict", "label_id"]].values.tolist() == [
                ["syn0000003", "outlier", "18c2f0a1b2-0001"]]
            assert reads["causes"].iloc[0] == ["metal implant"] and reads["note"].iloc[0] == "hip"
            first = _pane(at)["items"][0]
            assert first["read"] == {"verdict": "outlier", "causes": ["metal implant"],
                                     "note": "hip"}
            if reload:
                assert _pane(at)["start"] == 1  # the pane opens at the first unread scan
    finally:
        holder.stdin.close()
        holder.wait(timeout=10)
    with open_journal(settings.catalog_path, write=False) as j:
        assert len(audit_table(j).query("action == 'label'")) == 1


def test_server_pane_buttons_label_durably_while_the_catalog_is_held(team, monkeypatch):
    settings, sid = team
    at = _app(settings, monkeypatch)
    at.session_state[USER] = signed_in(settings.catalog_path, "bea")
    at.run()
    at.toggle(key="mr_browser").set_value(False).run()  # the server draws the pane
    holder = hold_catalog(settings.catalog_path)
    try:
        at.button(key="kb_tag_1").click().run()  # metal implant
        at.button(key="kb_outlier").click().run()
        assert not at.exception
        assert "Saved: syn0000003 → outlier" in at.success[0].value
        assert "syn0000001" in at.subheader[0].value  # the next scan of bea's queue
        with open_journal(settings.catalog_path, write=False) as j:
            reads = latest_reads(j, sid, "bea")
        assert reads[["scan_id", "verdict"]].values.tolist() == [["syn0000003", "outlier"]]
        assert reads["causes"].iloc[0] == ["metal implant"]
    finally:
        holder.stdin.close()
        holder.wait(timeout=10)
    with connect(settings.catalog_path) as con:
        rows = con.execute("SELECT reviewer, verdict, causes FROM labels "
                           "WHERE session_id = ?", [sid]).fetchall()
    assert rows == [("bea", "outlier", ["metal implant"])]


def test_no_session_no_label(catalog, monkeypatch):
    add_account(users_path(catalog.catalog_path), "dan", "reviewer", "pw-dan-123")
    at = _app(catalog, monkeypatch)
    at.session_state[USER] = signed_in(catalog.catalog_path, "dan")
    at.run()
    at.switch_page("app_pages/my_reviews.py").run()
    assert "no open review session" in at.info[0].value
    assert not [b for b in at.button if b.key and b.key.startswith("kb_")]


def test_admin_creates_session_adjudicates_and_sees_kappa(team, monkeypatch):
    settings, sid = team
    at = _app(settings, monkeypatch)
    at.session_state[USER] = signed_in(settings.catalog_path, "ada")
    at.run()
    at.switch_page("app_pages/sessions.py").run()
    at.text_input(key="ns_name").input("sample")
    at.radio(key="ns_source").set_value("random sample of unflagged scans")
    at.number_input(key="ns_sample").set_value(6)
    at.multiselect(key="ns_reviewers").set_value(["bea", "cyd", "ada"])
    at.number_input(key="ns_reads").set_value(2)
    next(b for b in at.button if b.label == "Create session").click().run()
    assert not at.exception and "6 scans, 2 reads each" in at.success[0].value
    table = at.dataframe[0].value
    assert int(table.loc[table["name"] == "sample", "reads_due"].iloc[0]) == 12
    with open_journal(settings.catalog_path) as j:
        add_reads(j, session_id=sid, reviewer="bea", scan_ids=["syn0000003"], verdict="outlier")
        add_reads(j, session_id=sid, reviewer="cyd", scan_ids=["syn0000003"], verdict="inlier")
        add_reads(j, session_id=sid, reviewer="bea", scan_ids=["syn0000001"], verdict="inlier")
        add_reads(j, session_id=sid, reviewer="cyd", scan_ids=["syn0000001"], verdict="inlier")
    at.switch_page("app_pages/team.py").run()
    at.selectbox(key="team_session").set_value(sid).run()
    kappas = _frame(at, "kappa")
    cohen = kappas[(kappas["statistic"] == "Cohen") & (kappas["measure"] == "verdict")]
    # by hand: p_o = 1/2; bea (outlier, inlier), cyd (inlier, inlier): p_e = 1/2·1 = 1/2 → κ = 0
    assert cohen["kappa"].iloc[0] == pytest.approx(0.0)
    assert at.selectbox(key="adj_scan").value == "syn0000003"
    at.radio(key="adj_v_syn0000003").set_value("outlier")
    next(b for b in at.button if b.label == "Set final verdict").click().run()
    assert not at.exception
    final = _frame(at, "adjudicator")
    assert final[["scan_id", "verdict", "adjudicator"]].values.tolist() == [
        ["syn0000003", "outlier", "ada"]]
    at.switch_page("app_pages/audit.py").run()
    log = _frame(at, "action")
    assert list(log["action"][:2]) == ["adjudicate", "label"]



def test_more_like_this_labels_the_cluster_after_a_confirmation(catalog, monkeypatch):
    with connect(catalog.catalog_path, read_only=True) as con:
        rows = con.execute("SELECT scan_id, cluster FROM embeddings WHERE cluster >= 0 "
                           "ORDER BY cluster, scan_id").fetchall()
    by_cluster: dict[int, list[str]] = {}
    for scan, cluster in rows:
        by_cluster.setdefault(cluster, []).append(scan)
    same = next(scans for scans in by_cluster.values() if len(scans) >= 3)[:3]
    cluster_of = dict(rows)
    other = next(s for s, c in rows if c != cluster_of[same[0]])  # not like the first scan
    add_account(users_path(catalog.catalog_path), "bea", "reviewer", "pw-bea-123")
    with open_journal(catalog.catalog_path) as j:
        sid = create_session(j, name="one", created_by="ada", run_id="synthetic", source="t",
                             reads_per_scan=1, show_others=False, show_model=False,
                             queues={"bea": [same[0], other, *same[1:]]})
    at = _app(catalog, monkeypatch)
    at.session_state[USER] = signed_in(catalog.catalog_path, "bea")
    at.run()
    at.toggle(key="mlt_on").set_value(True).run()
    at.radio(key="mlt_how").set_value("same cluster").run()
    assert at.multiselect(key=f"mlt_sel_{same[0]}").value == same[1:]
    at.button(key="mlt_ask").click().run()
    with open_journal(catalog.catalog_path, write=False) as j:
        assert latest_reads(j, sid).empty  # nothing before the confirmation
    at.button(key="mlt_yes").click().run()
    assert not at.exception and "Saved: 2 scans → outlier" in at.success[0].value
    with open_journal(catalog.catalog_path, write=False) as j:
        reads = latest_reads(j, sid)
    assert sorted(reads["scan_id"]) == sorted(same[1:]) and set(reads["verdict"]) == {"outlier"}
    # the browser pane is handed the bulk reads at once, not the queue from before them
    read_in_pane = {i["id"]: (i["read"] or {}).get("verdict") for i in _pane(at)["items"]}
    assert read_in_pane == {same[0]: None, other: None, same[1]: "outlier", same[2]: "outlier"}


def test_a_session_of_flagged_or_unflagged_scans_waits_for_every_flag(team, monkeypatch):
    # during a scoring (or after one that stopped before T) the unflagged sample drew flagged
    # scans, and the flagged set missed some, without a word
    settings, _ = team
    with connect(settings.catalog_path) as con:
        con.execute("UPDATE scores SET is_outlier = NULL WHERE scan_id IN "
                    "(SELECT scan_id FROM scores ORDER BY scan_id LIMIT 5)")
    at = _app(settings, monkeypatch)
    at.session_state[USER] = signed_in(settings.catalog_path, "ada")
    at.run()
    at.switch_page("app_pages/sessions.py").run()
    at.text_input(key="ns_name").input("audit")
    at.multiselect(key="ns_reviewers").set_value(["bea", "cyd"])
    for source in ("flagged scans", "random sample of unflagged scans"):
        at.radio(key="ns_source").set_value(source)
        next(b for b in at.button if b.label == "Create session").click().run()
        assert not at.exception and not at.success
        assert at.error[0].value.startswith("5 scored scans of run `synthetic` have no flag yet")
    at.radio(key="ns_source").set_value("a cluster")  # reads no flag: created as before
    next(b for b in at.button if b.label == "Create session").click().run()
    assert not at.error, at.error[0].value
    assert "reads each" in at.success[0].value


def test_a_queued_scan_removed_from_the_catalog_is_left_out_of_the_queue(team, monkeypatch):
    # until stop 58 no scan could leave the catalog; `ctae remove` of a queued scan then ended
    # My reviews in a KeyError (the pane looked each queued scan up in the run's scan table)
    from dashboard import data
    from jobs.remove import run_remove

    settings, sid = team
    with open_journal(settings.catalog_path) as j:  # cyd read it before it was removed
        add_reads(j, session_id=sid, reviewer="cyd", scan_ids=["syn0000003"], verdict="inlier")
    run_remove(settings, {"syn0000003": "named"}, {})
    at = _app(settings, monkeypatch)
    at.session_state[USER] = signed_in(settings.catalog_path, "bea")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert [i["id"] for i in _pane(at)["items"]] == ["syn0000001"]
    removed = "1 scan(s) of your queue were removed from the catalog since the session began"
    assert any(removed in c.value for c in at.caption)
    at.toggle(key="mr_browser").set_value(False).run()  # the server's pane: the same queue
    assert not at.exception and "Scan 1 of 1" in at.get("progress")[0].proto.text
    admin = _app(settings, monkeypatch)  # the session's table counts what can no longer be read
    admin.session_state[USER] = signed_in(settings.catalog_path, "ada")
    admin.run()
    admin.switch_page("app_pages/sessions.py").run()
    assert not admin.exception
    table = [d.value for d in admin.dataframe if "removed_scans" in d.value.columns][0]
    # bea's read of the removed scan is no longer due (until stop 59 it was: 4 reads due, and
    # the session could never be completed); cyd's, done before, stays counted
    assert table[["name", "scans", "removed_scans", "reads_due", "reads_done"]].values.tolist() == [
        ["double", 2, 1, 3, 1]]
    run_remove(settings, {"syn0000001": "named"}, {})
    data._LAST.clear()  # the pane's scan table may be 30 s old (dashboard.data.scan_table)
    at.run()
    assert not at.exception
    assert at.info[0].value == "Every scan of your queue has been removed from the catalog."
