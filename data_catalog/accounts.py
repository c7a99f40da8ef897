"""Reviewer accounts: a JSON file of names, roles and argon2 password hashes, kept by the admin.

The file sits beside the catalog (``users.json``, or ``$CTAE_USERS``), readable by its owner
only. Local accounts carry a password hash; accounts that sign in through the site's OpenID
Connect provider carry none and are matched by the e-mail the provider vouches for.
"""

from __future__ import annotations

import fcntl
import functools
import json
import os
import re
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from data_catalog.errors import CatalogError
from data_catalog.journal import now_iso

ROLES = ("admin", "reviewer")
USERS_ENV = "CTAE_USERS"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}$")
_HASHER = PasswordHasher()


_DUMMY_HASH = "$argon2id$v=19$m=65536,t=3,p=4$YeYV9OBR/aQbGN9nPe0NRw$Wwq/SMcrc7UvxEMAOuDW5jGZHFtVspW7wmNygwUZ0ok"
"""argon2's hash of "not a password" at its default cost, written once: hashing it at import
cost every command that imported this module ~0.13 s until stop 59."""


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the name is unknown, so that a wrong name costs the same time as a
    wrong password: ``_DUMMY_HASH``, or a new hash where this argon2's default cost differs."""
    return _HASHER.hash("not a password") if _HASHER.check_needs_rehash(_DUMMY_HASH) else _DUMMY_HASH


@dataclass(frozen=True)
class Account:
    """One person who may sign in: name (or OIDC e-mail), role, password hash (None for OIDC)."""

    name: str
    role: str
    password_hash: str | None
    created_at: str


def users_path(catalog: Path | str, env: Mapping[str, str] | None = None) -> Path:
    """The accounts file: $CTAE_USERS, else ``users.json`` beside the catalog."""
    env = os.environ if env is None else env
    return Path(env.get(USERS_ENV) or Path(catalog).parent / "users.json").expanduser().resolve()


class AccountsFileError(CatalogError, ValueError):
    """The accounts file cannot be read as one. Nobody can sign in until it is fixed (the
    dashboard does not fall back to serving without sign-in)."""


def load_accounts(path: Path) -> dict[str, Account]:
    """Every account in the file (empty when the file does not exist).

    Raises:
        AccountsFileError: the file is no ctae accounts file (not JSON, no ``users``, an
            account with fields it does not know), or the path is a folder: read as "no
            accounts" it would have opened the dashboard without sign-in.
    """
    if not path.exists():
        return {}
    if not path.is_file():
        raise AccountsFileError(_not_a_file(path))
    try:
        raw = json.loads(path.read_text())
        return {name: Account(name=name, **fields) for name, fields in raw["users"].items()}
    except (ValueError, KeyError, TypeError) as err:
        raise AccountsFileError(
            f"{path}: not a ctae accounts file ({err}); fix it, or move it aside and recreate "
            "the accounts with `ctae users add`"
        ) from err


def _not_a_file(path: Path) -> str:
    return (f"{path} is a folder, not an accounts file; point ${USERS_ENV} at a file (e.g. "
            f"{path / 'users.json'}), or move the folder aside")


def _save(path: Path, accounts: Mapping[str, Account]) -> None:
    payload = {"users": {n: {k: v for k, v in asdict(a).items() if k != "name"}
                         for n, a in sorted(accounts.items())}}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".users-", suffix=".json")
    with os.fdopen(fd, "w") as handle:  # mkstemp: mode 0600, owner only
        json.dump(payload, handle, indent=2)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)  # atomic: a reader never sees half a file


def lock_path(path: Path) -> Path:
    """The lock file beside the accounts file that serialises its changes."""
    return path.with_name(path.name + ".lock")


@contextmanager
def _changing(path: Path) -> Iterator[dict[str, Account]]:
    """The accounts, to change in place and save, with no other change between the read and
    the write: until stop 56 eight `ctae users add` at once left two of the eight accounts,
    each having read the file before the others wrote it. A folder in the file's place is
    refused by ``load_accounts``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path(path), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        accounts = load_accounts(path)
        yield accounts
        _save(path, accounts)
    finally:
        os.close(fd)  # and with it the lock


def add_account(path: Path, name: str, role: str, password: str | None) -> Account:
    """Add or replace an account; ``password=None`` makes an OpenID Connect account."""
    if not _NAME.match(name):
        raise ValueError(
            f"user name {name!r} must be 1-64 letters, digits or . _ @ + - (an e-mail for OIDC)"
        )
    if role not in ROLES:
        raise ValueError(f"role {role!r} must be one of {list(ROLES)}")
    if password is not None and len(password) < 8:
        raise ValueError(f"the password for {name} must have at least 8 characters")
    hashed = None if password is None else _HASHER.hash(password)  # slow: outside the lock
    with _changing(path) as accounts:
        before = accounts.get(name)
        account = Account(name, role, hashed, now_iso())
        accounts[name] = account
        _an_admin_stays(accounts, before)
    return account


def remove_account(path: Path, name: str) -> Account:
    """Remove an account; its labels stay (they carry the name)."""
    with _changing(path) as accounts:
        if name not in accounts:
            raise KeyError(f"no user {name!r} in {path}; `ctae users list` shows who there is")
        account = accounts.pop(name)
        _an_admin_stays(accounts, account)
        return account


def has_admin(accounts: dict[str, Account]) -> bool:
    """Whether one of ``accounts`` may open the dashboard's admin pages."""
    return any(a.role == "admin" for a in accounts.values())


def _an_admin_stays(accounts: dict[str, Account], changed: Account | None) -> None:
    """Refuse a change (raising before ``_changing`` saves it) that leaves accounts but no admin:
    once anyone must sign in, only an admin reaches the dashboard's admin pages (review sessions,
    team, export, audit), and until stop 58 removing or demoting the last admin locked all of
    them until someone ran `ctae users add NAME --role admin` on the server. With no account
    left at all the dashboard is the single user's on localhost again, which is allowed."""
    if changed is None or changed.role != "admin" or not accounts:
        return
    if not has_admin(accounts):
        raise ValueError(
            f"{changed.name} is the last admin: with {len(accounts)} account(s) left and no "
            "admin, nobody could open the dashboard's admin pages (review sessions, team, "
            "export, audit); make another account admin first (`ctae users add NAME --role "
            "admin`)")


def verify_password(path: Path, name: str, password: str) -> Account | None:
    """The account when ``password`` is right for ``name``; None for any wrong name or password."""
    account = load_accounts(path).get(name)
    hashed = account.password_hash if account and account.password_hash else _dummy_hash()
    try:
        _HASHER.verify(hashed, password)
    except (VerificationError, InvalidHashError):
        return None
    return account if account and account.password_hash else None
