"""`ctae users add|remove|list`: the accounts that may sign in to the dashboard."""

from __future__ import annotations

import getpass
import sys
from typing import Annotated

import typer

from data_catalog.accounts import (
    ROLES,
    add_account,
    has_admin,
    load_accounts,
    remove_account,
    users_path,
)
from data_catalog.journal import open_journal
from data_catalog.sessions import audit
from jobs.job_errors import JobError, stop
from jobs.options import CatalogOption, settings_from

users_app = typer.Typer(
    help="Accounts that may sign in to the dashboard (kept in users.json beside the catalog, "
    "or $CTAE_USERS).",
    no_args_is_help=True,
)


def _audit(catalog, action: str, name: str, before, after) -> None:
    with open_journal(catalog) as j:
        audit(j, who=f"cli:{getpass.getuser()}", action=action, target=name, before=before,
              after=after)


@users_app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="Sign-in name (the e-mail for --oidc accounts).")],
    role: Annotated[str, typer.Option(help=f"One of {', '.join(ROLES)}.")] = "reviewer",
    oidc: Annotated[
        bool, typer.Option("--oidc", help="Signs in through the site's OpenID Connect provider.")
    ] = False,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from stdin (scripts).")
    ] = False,
    catalog: CatalogOption = None,
) -> None:
    """Add an account, or change its role or password."""
    settings = settings_from(catalog)
    path = users_path(settings.catalog_path)
    password = None
    if not oidc:
        if password_stdin:
            password = sys.stdin.readline().rstrip("\n")
        else:
            password = typer.prompt(f"Password for {name}", hide_input=True,
                                    confirmation_prompt=True)
    before = load_accounts(path).get(name)
    try:
        account = add_account(path, name, role, password)
    except ValueError as err:
        raise typer.BadParameter(str(err)) from err
    _audit(settings.catalog_path, "add_user", name, before and {"role": before.role},
           {"role": account.role, "oidc": oidc})
    typer.echo(f"{name}: {role}{' (OpenID Connect)' if oidc else ''} in {path}")
    if not has_admin(load_accounts(path)):
        typer.echo("no account is admin yet: everyone must now sign in, and nobody can open the "
                   "dashboard's admin pages (review sessions, team, export, audit) until one is: "
                   "`ctae users add NAME --role admin`", err=True)


@users_app.command("remove")
def remove(
    name: Annotated[str, typer.Argument(help="The account to remove; its labels stay.")],
    catalog: CatalogOption = None,
) -> None:
    """Remove an account."""
    settings = settings_from(catalog)
    path = users_path(settings.catalog_path)
    try:
        account = remove_account(path, name)
    except (KeyError, ValueError) as err:
        raise stop("users", JobError(err.args[0])) from err
    _audit(settings.catalog_path, "remove_user", name, {"role": account.role}, None)
    typer.echo(f"removed {name} from {path}")


@users_app.command("list")
def list_users(catalog: CatalogOption = None) -> None:
    """List the accounts: name, role, how they sign in."""
    path = users_path(settings_from(catalog).catalog_path)
    accounts = load_accounts(path)
    if not accounts:
        typer.echo(f"no accounts in {path}; add one with `ctae users add NAME --role admin`")
        return
    for account in accounts.values():
        how = "password" if account.password_hash else "OpenID Connect"
        typer.echo(f"{account.name}\t{account.role}\t{how}\t{account.created_at}")


def register(app: typer.Typer) -> None:
    """Add `ctae users` to the CLI."""
    app.add_typer(users_app, name="users")
