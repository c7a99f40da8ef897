"""Accounts file: argon2 hashes, wrong passwords refused, roles, owner-only file."""

from __future__ import annotations

import stat

import pytest

from data_catalog.accounts import (
    add_account,
    load_accounts,
    remove_account,
    users_path,
    verify_password,
)


def test_passwords_are_hashed_and_checked(tmp_path):
    path = users_path(tmp_path / "catalog.duckdb", env={})
    add_account(path, "ada", "admin", "correct horse")
    add_account(path, "bob@site.org", "reviewer", None)
    assert path == (tmp_path / "users.json").resolve()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "correct horse" not in path.read_text()
    assert load_accounts(path)["ada"].password_hash.startswith("$argon2id$")
    assert verify_password(path, "ada", "correct horse").role == "admin"
    assert verify_password(path, "ada", "wrong horse") is None
    assert verify_password(path, "eve", "correct horse") is None
    assert verify_password(path, "bob@site.org", "") is None  # OIDC accounts have no password
    with pytest.raises(ValueError, match="role"):
        add_account(path, "cyd", "owner", "long enough")
    with pytest.raises(ValueError, match="8 characters"):
        add_account(path, "cyd", "reviewer", "short")
    remove_account(path, "ada")
    assert set(load_accounts(path)) == {"bob@site.org"}
    assert users_path(tmp_path / "c.duckdb", env={"CTAE_USERS": str(tmp_path / "u.json")}) == (
        tmp_path / "u.json").resolve()
