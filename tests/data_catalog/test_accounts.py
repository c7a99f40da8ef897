"""Accounts file: argon2 hashes, wrong passwords refused, roles, owner-only file."""

from __future__ import annotations

import stat
from pathlib import Path

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
    with pytest.raises(ValueError, match="ada is the last admin"):
        remove_account(path, "ada")  # bob would be left, and nobody to open the admin pages
    assert set(load_accounts(path)) == {"ada", "bob@site.org"}  # nothing saved
    add_account(path, "bob@site.org", "admin", None)
    remove_account(path, "ada")
    assert set(load_accounts(path)) == {"bob@site.org"}
    assert users_path(tmp_path / "c.duckdb", env={"CTAE_USERS": str(tmp_path / "u.json")}) == (
        tmp_path / "u.json").resolve()


def _add_after(barrier, path: str, name: str) -> None:
    barrier.wait()  # every process reads and writes the file at the same moment
    add_account(Path(path), name, "reviewer", f"password-{name}")


def test_accounts_added_at_once_by_several_processes_are_all_kept(tmp_path):
    # until stop 56 eight `ctae users add` at once kept two of the eight accounts: each read
    # the file before the others had written it
    import multiprocessing

    path = tmp_path / "users.json"
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(6)
    workers = [context.Process(target=_add_after, args=(barrier, str(path), f"user{i}"))
               for i in range(6)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert [worker.exitcode for worker in workers] == [0] * 6
    assert sorted(load_accounts(path)) == [f"user{i}" for i in range(6)]
    remove_account(path, "user3")
    assert sorted(load_accounts(path)) == ["user0", "user1", "user2", "user4", "user5"]


def _secret_after(barrier, path: str, out) -> None:
    from data_catalog.session_tokens import server_secret

    barrier.wait()  # every process asks for the secret before any has one
    out.put(server_secret(Path(path)))


def test_servers_starting_at_once_all_sign_with_the_one_whole_secret(tmp_path):
    # until stop 57 the secret file was created empty and written after: a second process
    # reading in between signed with an empty secret (25 of 30 rounds of eight at once)
    import multiprocessing

    from data_catalog.session_tokens import secret_path, server_secret

    context = multiprocessing.get_context("fork")
    for round_ in range(5):
        path = tmp_path / f"round{round_}" / "users.json"
        path.parent.mkdir()
        barrier, out = context.Barrier(6), context.Queue()
        workers = [context.Process(target=_secret_after, args=(barrier, str(path), out))
                   for _ in range(6)]
        for worker in workers:
            worker.start()
        secrets = [out.get(timeout=60) for _ in workers]
        for worker in workers:
            worker.join(timeout=60)
        assert len(set(secrets)) == 1 and len(secrets[0]) == 64, secrets
        assert sorted(p.name for p in path.parent.iterdir()) == ["users.secret"]  # no part left
    secret_path(path).write_bytes(b"")  # one cut short by a crash is refused, not signed with
    with pytest.raises(PermissionError, match="cut short"):
        server_secret(path)


def test_an_unknown_name_is_checked_against_a_hash_of_the_real_cost(tmp_path, monkeypatch):
    # the hash an unknown name is verified against is a constant since stop 59 (made at import
    # before, ~0.13 s for every command that imported accounts): it must cost what a real
    # account's hash costs, or a wrong name would answer faster than a wrong password
    import data_catalog.accounts as accounts

    fresh = accounts._HASHER.hash("pw")
    assert accounts._dummy_hash().split("$")[:4] == fresh.split("$")[:4]  # id, version, m/t/p
    path = tmp_path / "users.json"
    add_account(path, "ada", "admin", "pw-ada-1234")
    checked = []

    class Watched:  # argon2's hasher, noting what each sign-in is verified against
        def verify(self, hashed: str, password: str) -> bool:
            checked.append(hashed)
            return fresh_hasher.verify(hashed, password)

    fresh_hasher = accounts._HASHER
    monkeypatch.setattr(accounts, "_HASHER", Watched())
    assert accounts.verify_password(path, "nobody", "pw-ada-1234") is None
    assert verify_password(path, "ada", "pw-ada-1234") is not None
    assert checked[0] == accounts._dummy_hash() and checked[1].startswith("$argon2id$")
