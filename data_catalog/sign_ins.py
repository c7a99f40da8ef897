"""Sign-in attempts in the review journal: lock-outs after repeated wrong passwords, sign-outs.

Five wrong passwords for one account within fifteen minutes (since its last sign-in) lock that
account for fifteen minutes after the last of them; twenty wrong passwords from one client in
fifteen minutes, whatever the names, lock that client the same way. While locked, a sign-in is
refused without trying the password. Wrong passwords and each lock are in the audit log.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta

from data_catalog.journal import now_iso
from data_catalog.sessions import audit

_INSERT = "INSERT INTO sign_in_events (name, client, outcome, created_at) VALUES (?, ?, ?, ?)"
_LAST = "SELECT max(created_at) FROM sign_in_events WHERE name = ? AND outcome = ?"
_ACCOUNT_WRONG = """
SELECT count(*), max(created_at) FROM sign_in_events
WHERE name = ? AND outcome = 'wrong' AND created_at > ?"""
_CLIENT_WRONG = """
SELECT count(*), max(created_at) FROM sign_in_events
WHERE client = ? AND outcome = 'wrong' AND created_at > ?"""


def _shift(iso: str, seconds: float) -> str:
    moment = datetime.fromisoformat(iso) + timedelta(seconds=seconds)
    return moment.isoformat(timespec="microseconds")


@dataclass(frozen=True)
class SignInLimits:
    """How many wrong passwords lock an account / a client, within and for how long."""

    failures_per_account: int = 5
    failures_per_client: int = 20
    window_s: float = 15 * 60
    lockout_s: float = 15 * 60


@dataclass(frozen=True)
class Lockout:
    """Sign-in is refused until ``until`` (ISO 8601, UTC) for the account or for the client."""

    until: str
    by: str  # "account" | "client"


def lockout(j: sqlite3.Connection, name: str, client: str, limits: SignInLimits = SignInLimits(),
            *, not_before: str = "", now: str | None = None) -> Lockout | None:
    """The lock on signing in as ``name`` from ``client`` at ``now``, or None when there is none.

    Wrong passwords for the account count since its last sign-in and since ``not_before`` (when
    the account was last written: an admin's new password lifts the lock).
    """
    now = now or now_iso()
    since = _shift(now, -limits.window_s)
    last_ok = j.execute(_LAST, [name, "ok"]).fetchone()[0] or ""
    account_since = max(since, last_ok, not_before)
    checks = ((_ACCOUNT_WRONG, name, account_since, limits.failures_per_account, "account"),
              (_CLIENT_WRONG, client, since, limits.failures_per_client, "client"))
    for query, who, after, most, by in checks:
        count, last_wrong = j.execute(query, [who, after]).fetchone()
        if count >= most and (until := _shift(last_wrong, limits.lockout_s)) > now:
            return Lockout(until, by)
    return None


def record_attempt(j: sqlite3.Connection, name: str, client: str, ok: bool,
                   limits: SignInLimits = SignInLimits(), *, not_before: str = ""
                   ) -> Lockout | None:
    """Record a sign-in with a right or wrong password; returns the lock a wrong one started."""
    j.execute(_INSERT, [name, client, "ok" if ok else "wrong", now_iso()])
    if ok:
        return None
    audit(j, who=f"sign-in from {client}", action="sign_in_failed", target=name, before=None,
          after={"client": client})
    locked = lockout(j, name, client, limits, not_before=not_before)
    if locked is not None:
        audit(j, who=f"sign-in from {client}", action="sign_in_locked",
              target=name if locked.by == "account" else client, before=None,
              after={"by": locked.by, "until": locked.until, "client": client, "name": name})
    return locked


def record_refused(j: sqlite3.Connection, name: str, client: str) -> None:
    """Record a sign-in refused because of a lock (the password was not tried)."""
    j.execute(_INSERT, [name, client, "locked", now_iso()])


def record_sign_out(j: sqlite3.Connection, name: str, client: str) -> None:
    """Record a sign-out: every token of ``name`` issued before now stops working."""
    j.execute(_INSERT, [name, client, "signed_out", now_iso()])
    audit(j, who=name, action="sign_out", target=name, before=None, after={"client": client})


def last_sign_out(j: sqlite3.Connection, name: str) -> str | None:
    """When ``name`` last signed out (ISO 8601, UTC), or None."""
    return j.execute(_LAST, [name, "signed_out"]).fetchone()[0]
