"""`ctae dashboard`: serve the triage dashboard (Streamlit) on one catalog."""

from __future__ import annotations

import errno
import logging
import os
import socket
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Annotated

import typer

from data_catalog.accounts import load_accounts, users_path
from data_catalog.settings import CATALOG_ENV, STORE_ENV
from jobs.options import CatalogOption, StoreOption, settings_from

logger = logging.getLogger(__name__)

APP_PATH = Path(__file__).resolve().parents[1] / "dashboard" / "app.py"
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


def secrets_files(cwd: Path | None = None) -> list[Path]:
    """The secrets files Streamlit reads: ~/.streamlit/ and the working folder's .streamlit/."""
    return [Path.home() / ".streamlit" / "secrets.toml",
            (cwd or Path.cwd()) / ".streamlit" / "secrets.toml"]


def oidc_configured(files: list[Path]) -> bool:
    """True when a secrets file has an [auth] section (OpenID Connect through st.login)."""
    for path in files:
        try:
            if "auth" in tomllib.loads(path.read_text()):
                return True
        except FileNotFoundError:
            continue
        except (OSError, tomllib.TOMLDecodeError) as err:
            raise typer.BadParameter(f"{path}: not readable TOML ({err}); fix the secrets file") from err
    return False


def sign_in_configured(catalog: Path, files: list[Path]) -> bool:
    """True when visitors must sign in: accounts exist, or OpenID Connect is configured."""
    return bool(load_accounts(users_path(catalog))) or oidc_configured(files)


def refuse_open_host(host: str, catalog: Path, files: list[Path]) -> None:
    """Refuse to serve beyond this machine when nobody would have to sign in."""
    if host in LOCAL_HOSTS or sign_in_configured(catalog, files):
        return
    raise typer.BadParameter(
        f"refusing to serve on {host} without sign-in: anyone who reaches it could label as "
        f"anyone. Add accounts first (`ctae users add NAME --role admin --catalog {catalog}`, "
        "then `ctae users add NAME` for each reviewer) or configure OpenID Connect in "
        ".streamlit/secrets.toml ([auth] section, see the README), or serve on 127.0.0.1.",
        param_hint="--host",
    )


def check_accounts(catalog: Path) -> None:
    """Read the accounts once before serving, so that an unreadable accounts file is said here
    (``AccountsFileError``: `ctae` prints it, exit 2) rather than on every visitor's page. The
    catalog itself was opened by ``settings_from`` (``follow_store``), which refuses a file
    that is no catalog this ctae can use."""
    load_accounts(users_path(catalog))


def bind_error(host: str, port: int) -> OSError | None:
    """Why a server may not listen on ``host``:``port`` now, or None (bound as Streamlit's
    server binds, address reuse on: a port left in TIME_WAIT counts as free)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as err:  # socket.gaierror too: a name that does not resolve
            return err
    return None


def port_free(host: str, port: int) -> bool:
    """Whether a server may listen on ``host``:``port`` now (``bind_error``)."""
    return bind_error(host, port) is None


def check_port(host: str, port: int) -> None:
    """Refuse a port out of range, or one a server cannot listen on at ``host`` now, with why
    and what to pass instead (Streamlit would say so in its log and end with code 0).

    Raises:
        typer.BadParameter: the port or the host cannot be served on.
    """
    if not 1 <= port <= 65535:
        raise typer.BadParameter(f"--port {port} must be between 1 and 65535")
    bind = bind_error(host, port)
    if bind is not None:
        raise _refuse_bind(host, port, bind)


def _refuse_bind(host: str, port: int, err: OSError) -> typer.BadParameter:
    """What to do where ``host``:``port`` cannot be bound: until stop 56 every failure was
    called a port in use, an address this machine does not have too."""
    if isinstance(err, socket.gaierror) or err.errno == errno.EADDRNOTAVAIL:
        return typer.BadParameter(
            f"{host} is not an address of this machine ({err.strerror or err}); pass 127.0.0.1 "
            "(this machine only), 0.0.0.0 (every address it has) or one of its own", param_hint="--host")
    if err.errno == errno.EACCES:
        return typer.BadParameter(
            f"port {port} may not be opened by this user ({err.strerror}): ports below 1024 need "
            "privileges; pass one from 1024 on, e.g. --port 8501", param_hint="--port")
    other = free_port(host, port + 1)
    return typer.BadParameter(
        f"port {port} on {host} is in use (another dashboard, or another program)"
        + (f"; pass --port {other}, which is free," if other else "; pass another --port")
        + " or stop what holds it", param_hint="--port")


def free_port(host: str, first: int, tries: int = 50) -> int | None:
    """The first port from ``first`` on that ``port_free`` finds free, or None."""
    return next((port for port in range(first, min(first + tries, 65536)) if port_free(host, port)), None)


def streamlit_command(port: int, host: str) -> list[str]:
    """The `streamlit run` command line that serves dashboard/app.py.

    Always headless: a non-headless Streamlit asks for an e-mail address on its first run and
    waits for an answer on stdin, which would hang the demo; ctae opens the browser itself.
    """
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(APP_PATH),
        "--server.port",
        str(port),
        "--server.address",
        host,
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        "--client.toolbarMode",
        "viewer",
        "--client.showErrorDetails",
        "none",  # visitors see a message, the server's log gets the traceback
        "--server.fileWatcherType",
        "none",  # users do not edit the app while reviewing; the watcher only costs CPU
        "--runner.postScriptGC",
        "false",  # a full gc.collect() after every rerun held the interpreter ~100 ms per label
    ]


def dashboard(
    catalog: CatalogOption = None,
    store: StoreOption = None,
    port: Annotated[int, typer.Option(help="Port to serve on.")] = 8501,
    host: Annotated[
        str,
        typer.Option(help="Address to bind; 0.0.0.0 serves your team (needs sign-in set up)."),
    ] = (
        "127.0.0.1"
    ),
    no_browser: Annotated[
        bool, typer.Option("--no-browser", help="Do not open a browser (servers, CI).")
    ] = False,
) -> None:
    """Start the triage dashboard on the catalog; Ctrl+C stops it."""
    check_port(host, port)
    settings = settings_from(catalog, store, follow_store=True)
    refuse_open_host(host, settings.catalog_path, secrets_files())
    if not settings.catalog_path.exists():
        logger.warning(
            "catalog %s does not exist yet; the dashboard will say which job to run",
            settings.catalog_path,
        )
    check_accounts(settings.catalog_path)
    env = {
        **os.environ,
        CATALOG_ENV: str(settings.catalog_path),
        STORE_ENV: str(settings.store_dir),
    }
    typer.echo(f"ctae dashboard on http://{host}:{port}/  catalog {settings.catalog_path}")
    command = streamlit_command(port, host)
    if not no_browser:
        open_browser_when_serving(f"http://{'127.0.0.1' if host == '0.0.0.0' else host}:{port}/")
    sys.stdout.flush()
    if os.name == "posix":  # become the server: a signal to `ctae dashboard` reaches Streamlit
        os.execve(command[0], command, env)
    try:
        result = subprocess.run(command, env=env, check=False)
    except KeyboardInterrupt:
        return
    if result.returncode not in (0, -2, 130):
        raise typer.Exit(result.returncode)


def open_browser_when_serving(url: str, timeout_s: float = 60.0) -> None:
    """Open ``url`` in the user's browser from a detached process once the port answers (this
    process is about to become the server)."""
    subprocess.Popen(
        [sys.executable, "-m", "jobs.browser", url, str(timeout_s)],
        start_new_session=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=APP_PATH.parents[1],
    )


def register(app: typer.Typer) -> None:
    """Add `ctae dashboard` to the CLI."""
    app.command("dashboard")(dashboard)
