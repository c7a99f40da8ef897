"""Review sessions in the journal: who reads which scans, their reads, adjudications, the audit log.

A label exists only inside a session: :func:`add_read` refuses a scan the session did not assign
to the reviewer, and a closed session. Every change is also an audit event (who, what, when,
before, after) in the same transaction.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

from data_catalog.journal import now_iso, to_json
from data_catalog.review import CAUSE_TAGS, VERDICTS, new_sortable_id

_INSERT_SESSION = """
INSERT INTO review_sessions (session_id, name, created_by, created_at, run_id, source,
    reads_per_scan, show_others, show_model, status)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'open')
"""
_INSERT_ASSIGNMENT = """
INSERT INTO session_assignments (session_id, reviewer, scan_id, position) VALUES (?, ?, ?, ?)
"""
_SESSION = "SELECT * FROM review_sessions WHERE session_id = ?"
_SESSIONS = """
SELECT s.session_id, s.name, s.status, s.reads_per_scan, s.show_others, s.show_model, s.source,
       s.run_id, s.created_by, s.created_at, s.closed_at,
       (SELECT count(DISTINCT a.scan_id) FROM session_assignments a
         WHERE a.session_id = s.session_id) AS scans,
       (SELECT count(*) FROM session_assignments a WHERE a.session_id = s.session_id
         AND (a.scan_id NOT IN (SELECT value FROM json_each(:removed))
              OR EXISTS (SELECT 1 FROM labels l WHERE l.session_id = a.session_id
                         AND l.scan_id = a.scan_id AND l.reviewer = a.reviewer))) AS reads_due,
       (SELECT count(DISTINCT l.scan_id || char(0) || l.reviewer) FROM labels l
         WHERE l.session_id = s.session_id) AS reads_done,
       (SELECT count(DISTINCT a.scan_id) FROM session_assignments a
         WHERE a.session_id = s.session_id
         AND a.scan_id IN (SELECT value FROM json_each(:removed))) AS removed_scans
FROM review_sessions s ORDER BY s.created_at DESC
"""
_SET_STATUS = """
UPDATE review_sessions SET status = ?, closed_at = ?, absorbed = 0 WHERE session_id = ?
"""
_REVIEWER_SESSIONS = """
SELECT s.* FROM review_sessions s
WHERE s.status = 'open'
  AND EXISTS (SELECT 1 FROM session_assignments a
              WHERE a.session_id = s.session_id AND a.reviewer = ?)
ORDER BY s.created_at DESC
"""
_QUEUE = """
SELECT scan_id FROM session_assignments WHERE session_id = ? AND reviewer = ? ORDER BY position
"""
_ASSIGNED = """
SELECT count(*) FROM session_assignments WHERE session_id = ? AND reviewer = ? AND scan_id = ?
"""
_LATEST_READS = """
SELECT scan_id, reviewer, verdict, causes, note, created_at, label_id FROM (
    SELECT *, row_number() OVER (PARTITION BY scan_id, reviewer ORDER BY seq DESC) AS rn
    FROM labels WHERE session_id = ? {who})
WHERE rn = 1 ORDER BY scan_id, reviewer
"""
_LABEL_OWNER = "SELECT session_id, reviewer, scan_id FROM labels WHERE label_id = ?"
_CLIENT_LABEL_ID = re.compile(r"[0-9A-Za-z_-]{8,64}")
_INSERT_LABEL = """
INSERT INTO labels (label_id, scan_id, reviewer, verdict, causes, note, run_id, session_id,
    created_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
_INSERT_ADJUDICATION = """
INSERT INTO adjudications (adjudication_id, session_id, scan_id, verdict, causes, note,
    adjudicator, created_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
"""
_LATEST_ADJUDICATIONS = """
SELECT scan_id, verdict, causes, note, adjudicator, created_at FROM (
    SELECT *, row_number() OVER (PARTITION BY scan_id ORDER BY seq DESC) AS rn
    FROM adjudications WHERE session_id = ?)
WHERE rn = 1 ORDER BY scan_id
"""
_INSERT_AUDIT = """
INSERT INTO audit_log (event_id, who, action, target, before_json, after_json, created_at)
VALUES (?, ?, ?, ?, ?, ?, ?)
"""
_AUDIT = """
SELECT created_at AS at, who, action, target, before_json AS before, after_json AS after
FROM audit_log ORDER BY seq DESC LIMIT ?
"""


class ReviewRefused(ValueError):
    """A review write that the session does not allow (not assigned, closed, bad verdict)."""


def audit(
    j: sqlite3.Connection, *, who: str, action: str, target: str | None, before: Any, after: Any
) -> None:
    """Record one change: who did what to which target, and the value before and after."""
    j.execute(
        _INSERT_AUDIT,
        [new_sortable_id(), who, action, target, to_json(before), to_json(after), now_iso()],
    )


def create_session(
    j: sqlite3.Connection,
    *,
    name: str,
    created_by: str,
    run_id: str | None,
    source: str,
    reads_per_scan: int,
    show_others: bool,
    show_model: bool,
    queues: Mapping[str, Sequence[str]],
) -> str:
    """Open a review session with each reviewer's queue (scan ids in reading order)."""
    if not name.strip():
        raise ReviewRefused("a review session needs a name")
    if not any(queues.values()):
        raise ReviewRefused(f"session {name!r} has no scans: choose a non-empty set of scans")
    session_id = new_sortable_id()
    j.execute(
        _INSERT_SESSION,
        [session_id, name.strip(), created_by, now_iso(), run_id, source, int(reads_per_scan),
         int(show_others), int(show_model)],
    )
    j.executemany(
        _INSERT_ASSIGNMENT,
        [(session_id, who, scan, i) for who, scans in queues.items() for i, scan in enumerate(scans)],
    )
    after = {"name": name, "source": source, "reads_per_scan": reads_per_scan,
             "show_others": show_others, "show_model": show_model,
             "queues": {who: len(scans) for who, scans in queues.items()}}
    audit(j, who=created_by, action="create_session", target=session_id, before=None, after=after)
    return session_id


def session(j: sqlite3.Connection, session_id: str) -> dict[str, Any] | None:
    """One session's row as a dict, or None."""
    row = j.execute(_SESSION, [session_id]).fetchone()
    return dict(row) if row else None


def set_session_status(j: sqlite3.Connection, session_id: str, status: str, who: str) -> None:
    """Close (or reopen) a session; closing unblinds it."""
    if status not in ("open", "closed"):
        raise ReviewRefused(f"session status {status!r} must be 'open' or 'closed'")
    before = session(j, session_id)
    if before is None:
        raise ReviewRefused(f"no review session {session_id!r}")
    j.execute(_SET_STATUS, [status, now_iso() if status == "closed" else None, session_id])
    audit(j, who=who, action=f"{'close' if status == 'closed' else 'reopen'}_session",
          target=session_id, before={"status": before["status"]}, after={"status": status})


def session_table(j: sqlite3.Connection, removed: Iterable[str] = ()) -> pd.DataFrame:
    """Every session, newest first, with its scans, reads due and done, and how many of its scans
    are among ``removed`` (taken out of the catalog by `ctae remove`): a removed scan's reads that
    were not done are no longer due, so a session can still be completed."""
    rows = j.execute(_SESSIONS, {"removed": json.dumps(sorted(removed))}).fetchall()
    return pd.DataFrame([dict(r) for r in rows])


def open_sessions_on(j: sqlite3.Connection, run_id: str) -> list[str]:
    """The names of the open review sessions whose scans were chosen from run ``run_id``."""
    return [r[0] for r in j.execute("SELECT name FROM review_sessions WHERE status = 'open' AND "
                                    "run_id = ? ORDER BY created_at", [run_id]).fetchall()]


def open_sessions_for(j: sqlite3.Connection, reviewer: str) -> list[dict[str, Any]]:
    """The open sessions that give ``reviewer`` scans to read, newest first."""
    return [dict(r) for r in j.execute(_REVIEWER_SESSIONS, [reviewer]).fetchall()]


def is_blinded(j: sqlite3.Connection, reviewer: str) -> bool:
    """True while ``reviewer`` is in an open session that hides others' reads or the model."""
    return any(not (s["show_others"] and s["show_model"]) for s in open_sessions_for(j, reviewer))


def queue(j: sqlite3.Connection, session_id: str, reviewer: str) -> list[str]:
    """The reviewer's scans in this session, in their shuffled reading order."""
    return [r[0] for r in j.execute(_QUEUE, [session_id, reviewer]).fetchall()]


def latest_reads(
    j: sqlite3.Connection, session_id: str, reviewer: str | None = None
) -> pd.DataFrame:
    """Each reviewer's newest read of each scan in the session (one reviewer's when given)."""
    sql = _LATEST_READS.format(who="AND reviewer = ?" if reviewer else "")
    args = [session_id, reviewer] if reviewer else [session_id]
    rows = [dict(r) for r in j.execute(sql, args).fetchall()]
    frame = pd.DataFrame(
        rows, columns=["scan_id", "reviewer", "verdict", "causes", "note", "created_at", "label_id"]
    )
    frame["causes"] = frame["causes"].map(json.loads)
    return frame


def _check_verdict(verdict: str, causes: Sequence[str]) -> None:
    if verdict not in VERDICTS:
        raise ReviewRefused(f"verdict {verdict!r} must be one of {list(VERDICTS)}")
    unknown = [c for c in causes if c not in CAUSE_TAGS]
    if unknown:
        raise ReviewRefused(f"cause tags {unknown} are not among {list(CAUSE_TAGS)}")


def add_reads(
    j: sqlite3.Connection,
    *,
    session_id: str,
    reviewer: str,
    scan_ids: Sequence[str],
    verdict: str,
    causes: Sequence[str] = (),
    note: str | None = None,
    label_ids: Sequence[str] | None = None,
) -> list[str]:
    """Record the reviewer's verdict on scans of their queue in an open session; returns label ids.

    ``label_ids`` (one per scan, e.g. made by the browser that sent the read): a read whose id
    the journal already holds is not written again, so a read sent twice counts once.

    Raises:
        ReviewRefused: no such session, session closed, a scan not assigned to the reviewer,
            unknown verdict or cause tag, a label id malformed or another read's.
    """
    _check_verdict(verdict, causes)
    if label_ids is not None and len(label_ids) != len(scan_ids):
        raise ReviewRefused(f"{len(label_ids)} label ids for {len(scan_ids)} scans: give one each")
    info = session(j, session_id)
    if info is None:
        raise ReviewRefused(f"no review session {session_id!r}; labels are written in a session")
    if info["status"] != "open":
        raise ReviewRefused(f"session {info['name']!r} is closed; ask an admin to reopen it")
    previous = latest_reads(j, session_id, reviewer).set_index("scan_id")
    ids = []
    for i, scan_id in enumerate(scan_ids):
        if j.execute(_ASSIGNED, [session_id, reviewer, scan_id]).fetchone()[0] == 0:
            raise ReviewRefused(
                f"scan {scan_id!r} is not in {reviewer}'s queue of session {info['name']!r}"
            )
        label_id = new_sortable_id() if label_ids is None else label_ids[i]
        if label_ids is not None and _known_label(j, label_id, (session_id, reviewer, scan_id)):
            ids.append(label_id)
            continue
        j.execute(
            _INSERT_LABEL,
            [label_id, scan_id, reviewer, verdict, to_json(list(causes)), note or None,
             info["run_id"], session_id, now_iso()],
        )
        before = None
        if scan_id in previous.index:
            old = previous.loc[scan_id]
            before = {"verdict": old["verdict"], "causes": old["causes"], "note": old["note"]}
        audit(j, who=reviewer, action="label", target=scan_id, before=before,
              after={"verdict": verdict, "causes": list(causes), "note": note or None,
                     "session_id": session_id})
        ids.append(label_id)
    return ids


def _known_label(j: sqlite3.Connection, label_id: str, owner: tuple[str, str, str]) -> bool:
    """True when the journal already holds this read (the same id for the same session, reviewer
    and scan); raises ReviewRefused for an id that is malformed or another read's."""
    if not isinstance(label_id, str) or not _CLIENT_LABEL_ID.fullmatch(label_id):
        raise ReviewRefused(f"label id {label_id!r}: 8–64 letters, digits, '-' or '_'")
    row = j.execute(_LABEL_OWNER, [label_id]).fetchone()
    if row is not None and tuple(row) != owner:
        raise ReviewRefused(f"label id {label_id!r} belongs to another read; send a new id")
    return row is not None


def adjudicate(
    j: sqlite3.Connection,
    *,
    session_id: str,
    scan_id: str,
    verdict: str,
    causes: Sequence[str],
    note: str | None,
    adjudicator: str,
) -> str:
    """Set the final verdict on a scan of the session (kept apart from the reads)."""
    _check_verdict(verdict, causes)
    if session(j, session_id) is None:
        raise ReviewRefused(f"no review session {session_id!r}")
    before = adjudications(j, session_id).set_index("scan_id")
    adjudication_id = new_sortable_id()
    j.execute(
        _INSERT_ADJUDICATION,
        [adjudication_id, session_id, scan_id, verdict, to_json(list(causes)), note or None,
         adjudicator, now_iso()],
    )
    old = before.loc[scan_id].to_dict() if scan_id in before.index else None
    audit(j, who=adjudicator, action="adjudicate", target=scan_id,
          before=old and {"verdict": old["verdict"], "causes": old["causes"]},
          after={"verdict": verdict, "causes": list(causes), "session_id": session_id})
    return adjudication_id


def adjudications(j: sqlite3.Connection, session_id: str) -> pd.DataFrame:
    """The newest final verdict per scan of the session."""
    rows = [dict(r) for r in j.execute(_LATEST_ADJUDICATIONS, [session_id]).fetchall()]
    frame = pd.DataFrame(
        rows, columns=["scan_id", "verdict", "causes", "note", "adjudicator", "created_at"]
    )
    frame["causes"] = frame["causes"].map(json.loads)
    return frame


def audit_table(j: sqlite3.Connection, limit: int = 500) -> pd.DataFrame:
    """The newest audit events: when, who, what, on which target, before and after."""
    rows = [dict(r) for r in j.execute(_AUDIT, [limit]).fetchall()]
    return pd.DataFrame(rows, columns=["at", "who", "action", "target", "before", "after"])
