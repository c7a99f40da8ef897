"""Signed, expiring sign-in tokens: a reload or a second tab keeps a reviewer signed in.

A token names the account, a fingerprint of the account as it was (role, password hash, when it
was written) and when it was issued, signed with the server's secret (``users.secret`` beside
the accounts file, mode 0600, made on first use). It is refused once it is older than
``SESSION_MAX_AGE_S``, when its signature is wrong, when the account is gone or was changed
(role, password) since, and when the reviewer signed out after it was issued (the caller checks
that against ``data_catalog.sign_ins.last_sign_out``).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from itsdangerous import BadSignature, TimestampSigner, URLSafeTimedSerializer

from data_catalog.accounts import Account, load_accounts
from data_catalog.journal import now_iso

SESSION_MAX_AGE_S = 8 * 3600  # a working day; then sign in again
_SALT = "ctae-sign-in"


@dataclass(frozen=True)
class TokenHolder:
    """The account a valid token names, and when the token was issued (ISO 8601, UTC)."""

    account: Account
    issued_at: str


def secret_path(users_file: Path) -> Path:
    """The server's signing secret, beside the accounts file: ``users.json`` → ``users.secret``."""
    return users_file.with_suffix(".secret")


def server_secret(users_file: Path) -> bytes:
    """The signing secret, made (owner-only) on first use; refused when others can read it.

    Made whole aside and linked into place, so that sessions or servers starting at once all
    read the one secret the first of them made: until stop 57 the file was created empty and
    written after, and a second reader in between signed with an empty secret (25 of 30 rounds
    of eight processes at once)."""
    path = secret_path(users_file)
    if not path.exists():
        _make_secret(path)
    if stat.S_IMODE(path.stat().st_mode) & 0o077:
        raise PermissionError(
            f"{path}: others may read the dashboard's signing secret; run `chmod 600 {path}` "
            "(or delete it to sign everybody out and make a new one)"
        )
    secret = path.read_bytes()
    if len(secret) < SECRET_MIN_BYTES:
        raise PermissionError(f"{path}: the dashboard's signing secret is cut short "
                              f"({len(secret)} bytes); delete it to sign everybody out and make "
                              "a new one")
    return secret


SECRET_MIN_BYTES = 32
"""Shortest secret accepted: a new one is 64 hex digits (256 bits)."""


def _make_secret(path: Path) -> None:
    part = path.with_name(f".{path.name}.{secrets.token_hex(8)}.part")
    fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
            handle.flush()
            os.fsync(handle.fileno())
        os.link(part, path)  # atomic, and refused where another made it first
    except FileExistsError:
        pass
    except OSError:  # a file system without hard links: whole, if not exclusive
        if not path.exists():
            os.replace(part, path)
    finally:
        part.unlink(missing_ok=True)


def _fingerprint(account: Account) -> str:
    text = f"{account.name}|{account.role}|{account.password_hash}|{account.created_at}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def serializer(users_file: Path, signer: type[TimestampSigner] = TimestampSigner
               ) -> URLSafeTimedSerializer:
    """Signs and reads tokens with the server's secret (HMAC-SHA256, timestamped)."""
    return URLSafeTimedSerializer(server_secret(users_file), salt=_SALT, signer=signer,
                                  signer_kwargs={"digest_method": hashlib.sha256})


def issue_token(users_file: Path, account: Account) -> str:
    """A token that signs ``account`` in for ``SESSION_MAX_AGE_S``."""
    payload = {"u": account.name, "f": _fingerprint(account), "t": now_iso()}
    return serializer(users_file).dumps(payload)


def token_holder(users_file: Path, token: str, *, max_age_s: int = SESSION_MAX_AGE_S
                 ) -> TokenHolder | None:
    """The account a token signs in, or None: forged, expired, or the account gone or changed."""
    try:
        payload = serializer(users_file).loads(token, max_age=max_age_s)
        name, fingerprint, issued_at = payload["u"], payload["f"], payload["t"]
    except (BadSignature, KeyError, TypeError):  # SignatureExpired is a BadSignature
        return None
    account = load_accounts(users_file).get(name)
    if account is None or _fingerprint(account) != fingerprint:
        return None
    return TokenHolder(account, str(issued_at))
