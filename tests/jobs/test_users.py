"""`ctae users add|remove|list` and the dashboard's refusal to serve beyond localhost unguarded."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from data_catalog.accounts import load_accounts, users_path, verify_password
from data_catalog.journal import open_journal
from data_catalog.sessions import audit_table
from jobs.cli import app
from jobs.dashboard import oidc_configured, refuse_open_host

ROOT = Path(__file__).resolve().parents[2]


def test_users_add_list_remove(tmp_path):
    catalog = tmp_path / "catalog.duckdb"
    runner = CliRunner()
    added = runner.invoke(app, ["users", "add", "ada", "--role", "admin", "--password-stdin",
                                "--catalog", str(catalog)], input="long password\n")
    assert added.exit_code == 0, added.output
    first = runner.invoke(app, ["users", "add", "cyd", "--password-stdin", "--catalog",
                                str(tmp_path / "other" / "catalog.duckdb")], input="long password\n")
    assert first.exit_code == 0 and "no account is admin yet" in first.output  # a reviewer alone
    runner.invoke(app, ["users", "add", "bea@site.org", "--oidc", "--catalog", str(catalog)])
    listed = runner.invoke(app, ["users", "list", "--catalog", str(catalog)])
    assert "ada\tadmin\tpassword" in listed.output
    assert "bea@site.org\treviewer\tOpenID Connect" in listed.output
    path = users_path(catalog)
    assert verify_password(path, "ada", "long password").role == "admin"
    short = runner.invoke(app, ["users", "add", "cyd", "--password-stdin", "--catalog",
                                str(catalog)], input="short\n")
    assert short.exit_code != 0 and "8 characters" in short.output
    # the last admin stays while others must sign in: else nobody reaches the admin pages
    last = runner.invoke(app, ["users", "remove", "ada", "--catalog", str(catalog)])
    assert last.exit_code == 2 and "ctae users: ada is the last admin: with 1 account(s) left" in last.output
    demoted = runner.invoke(app, ["users", "add", "ada", "--role", "reviewer", "--password-stdin",
                                  "--catalog", str(catalog)], input="long password\n")
    assert demoted.exit_code != 0 and "ada is the last admin" in demoted.output
    assert verify_password(path, "ada", "long password").role == "admin"
    assert runner.invoke(app, ["users", "remove", "bea@site.org", "--catalog", str(catalog)]).exit_code == 0
    assert runner.invoke(app, ["users", "remove", "ada", "--catalog", str(catalog)]).exit_code == 0
    assert load_accounts(path) == {}  # no account: the single user's dashboard on localhost
    missing = runner.invoke(app, ["users", "remove", "ada", "--catalog", str(catalog)])
    assert missing.exit_code == 2 and "ctae users: no user 'ada'" in missing.output
    with open_journal(catalog, write=False) as j:
        assert list(audit_table(j)["action"]) == ["remove_user", "remove_user", "add_user", "add_user"]


def test_dashboard_refuses_other_hosts_without_sign_in(tmp_path):
    catalog = tmp_path / "catalog.duckdb"
    secrets = tmp_path / "secrets.toml"
    refuse_open_host("127.0.0.1", catalog, [secrets])
    with pytest.raises(typer.BadParameter, match="ctae users add NAME --role admin"):
        refuse_open_host("0.0.0.0", catalog, [secrets])
    secrets.write_text('[auth]\nredirect_uri = "https://ctae.site.org/oauth2callback"\n'
                       'cookie_secret = "x"\nclient_id = "c"\nclient_secret = "s"\n'
                       'server_metadata_url = "https://id.site.org/.well-known/openid-configuration"\n')
    assert oidc_configured([tmp_path / "missing.toml", secrets])
    refuse_open_host("0.0.0.0", catalog, [secrets])
    secrets.write_text("[other]\nx = 1\n")
    with pytest.raises(typer.BadParameter):
        refuse_open_host("0.0.0.0", catalog, [secrets])
    CliRunner().invoke(app, ["users", "add", "ada", "--role", "admin", "--password-stdin",
                             "--catalog", str(catalog)], input="long password\n")
    refuse_open_host("0.0.0.0", catalog, [secrets])


def test_dashboard_serves_without_error_details():
    from jobs.dashboard import streamlit_command

    command = streamlit_command(8617, "127.0.0.1")
    assert command[command.index("--client.showErrorDetails") + 1] == "none"


def test_a_damaged_accounts_file_stops_users_and_dashboard_with_what_to_do_and_is_kept(tmp_path):
    catalog = tmp_path / "catalog.duckdb"
    users = users_path(catalog)
    users.write_text('{"users": {"ada": {"role": "admin", "pasword_hash": "x"}}}')  # a typo'd field
    damaged = users.read_text()
    for command in (["users", "list"], ["users", "add", "bo", "--oidc"], ["users", "remove", "ada"],
                    ["dashboard", "--no-browser", "--port", "8596"]):
        done = subprocess.run([sys.executable, "-m", "jobs", *command, "--catalog", str(catalog)],
                              capture_output=True, text=True, timeout=120,
                              env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})  # fmt: skip
        assert done.returncode == 2, (command, done.stderr)
        assert "Traceback" not in done.stderr
        assert done.stderr.strip().splitlines()[-1].startswith(
            f"ctae {command[0]}: {users}: not a ctae accounts file (")
        assert "ctae users add" in done.stderr
    assert users.read_text() == damaged
    assert not catalog.exists()  # nothing was served, nothing created


def test_an_accounts_path_that_is_a_folder_is_refused_by_name(tmp_path):
    catalog = tmp_path / "catalog.duckdb"
    users = users_path(catalog)
    users.mkdir()
    for command in (["users", "list"], ["users", "add", "bo", "--oidc"]):
        done = subprocess.run([sys.executable, "-m", "jobs", *command, "--catalog", str(catalog)],
                              capture_output=True, text=True, timeout=120, cwd=ROOT)
        assert done.returncode == 2, done.stderr  # until stop 55: a traceback, or "no accounts"
        assert done.stderr.strip().splitlines()[-1].startswith(
            f"ctae users: {users} is a folder, not an accounts file; point $CTAE_USERS at a file")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["users.json"]  # no temp file left
