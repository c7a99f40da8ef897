"""The dashboard's review reads and writes, all on the review journal beside the catalog.

None of these opens the DuckDB catalog, so none waits for a job: a read is acknowledged when the
journal has committed it to disk (a few milliseconds).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from data_catalog import sessions
from data_catalog.journal import open_journal

logger = logging.getLogger(__name__)


def record_reads(catalog: str, **read: Any) -> list[str]:
    """Durably record the reviewer's verdict on scans of their queue (the keywords of
    ``data_catalog.sessions.add_reads``); raises ReviewRefused."""
    with open_journal(catalog) as j:
        ids = sessions.add_reads(j, **read)
    logger.info("reads saved session=%s reviewer=%s n=%d verdict=%s", read["session_id"],
                read["reviewer"], len(ids), read["verdict"])
    return ids


def record_labels(catalog: str, session_id: str, reviewer: str,
                  labels: list[Mapping[str, Any]]) -> dict[str, str]:
    """Durably record reads sent by the browser (``{"id", "scan", "verdict", "causes",
    "note"}``), each once however often it is sent; returns label id → "" when it is in the
    journal, else why it was refused. Only returns once the journal has committed them."""
    outcome: dict[str, str] = {}
    with open_journal(catalog) as j:
        for label in labels:
            try:
                sessions.add_reads(j, session_id=session_id, reviewer=reviewer,
                                   scan_ids=[str(label.get("scan"))], verdict=str(label.get("verdict")),
                                   causes=[str(c) for c in label.get("causes") or []],
                                   note=(str(label["note"]) if label.get("note") else None),
                                   label_ids=[label["id"]])
                outcome[label["id"]] = ""
            except sessions.ReviewRefused as err:
                outcome[label["id"]] = str(err)
    logger.info("reads saved session=%s reviewer=%s n=%d", session_id, reviewer,
                sum(not why for why in outcome.values()))
    return outcome


def create_session(catalog: str, **fields: Any) -> str:
    """Open a review session (see ``data_catalog.sessions.create_session``)."""
    with open_journal(catalog) as j:
        return sessions.create_session(j, **fields)


def set_status(catalog: str, session_id: str, status: str, who: str) -> None:
    """Close or reopen a session."""
    with open_journal(catalog) as j:
        sessions.set_session_status(j, session_id, status, who)


def adjudicate(catalog: str, **fields: Any) -> str:
    """Record an admin's final verdict on a scan of a session."""
    with open_journal(catalog) as j:
        return sessions.adjudicate(j, **fields)


def session_table(catalog: str, removed: Iterable[str] = ()) -> pd.DataFrame:
    """Every session with its progress, newest first; the reads of ``removed`` scans (taken out
    of the catalog) that were not done are not due."""
    with open_journal(catalog, write=False) as j:
        return sessions.session_table(j, removed)


def session_info(catalog: str, session_id: str) -> dict[str, Any] | None:
    """One session's settings."""
    with open_journal(catalog, write=False) as j:
        return sessions.session(j, session_id)


def my_sessions(catalog: str, reviewer: str) -> list[dict[str, Any]]:
    """The open sessions that give the reviewer scans to read."""
    with open_journal(catalog, write=False) as j:
        return sessions.open_sessions_for(j, reviewer)


def is_blinded(catalog: str, reviewer: str) -> bool:
    """True while the reviewer is in an open session that hides others' reads or the model."""
    with open_journal(catalog, write=False) as j:
        return sessions.is_blinded(j, reviewer)


def queue_and_reads(
    catalog: str, session_id: str, reviewer: str
) -> tuple[list[str], dict[str, Mapping[str, Any]]]:
    """The reviewer's queue and their newest read of each scan in it."""
    with open_journal(catalog, write=False) as j:
        order = sessions.queue(j, session_id, reviewer)
        reads = sessions.latest_reads(j, session_id, reviewer)
    return order, {r["scan_id"]: r for r in reads.to_dict("records")}


def session_reads(catalog: str, session_id: str) -> pd.DataFrame:
    """Every reviewer's newest read of every scan of the session."""
    with open_journal(catalog, write=False) as j:
        return sessions.latest_reads(j, session_id)


def adjudications(catalog: str, session_id: str) -> pd.DataFrame:
    """The final verdicts set in the session."""
    with open_journal(catalog, write=False) as j:
        return sessions.adjudications(j, session_id)


def audit_log(catalog: str, limit: int = 500) -> pd.DataFrame:
    """The newest audit events."""
    with open_journal(catalog, write=False) as j:
        return sessions.audit_table(j, limit)
