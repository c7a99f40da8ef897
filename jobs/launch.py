"""`ctae`'s entry point: a job's command line is parsed here when it asks for no help.

typer parses through pydantic, building a validator per option: importing pydantic and
building them cost a one-series ``ctae ingest`` ~0.1-0.2 s, a tenth of its run. The jobs of
``FAST_COMMANDS`` are parsed instead by argparse, from the job function's own typer
annotations (names, types, defaults: declared once). Anything else — ``--help``, a usage
error, an option kind this parser does not handle — goes to typer (``jobs/cli.py``), which
answers it as before.
"""

from __future__ import annotations

import argparse
import atexit
import importlib
import os
import sys
import typing
from collections.abc import Callable
from pathlib import Path
from types import NoneType, UnionType
from typing import Any

from jobs.commands import COMMANDS, FAST_COMMANDS
from jobs.log_setup import configure_logging

SCALARS = (str, int, float, Path)
HANDLED = {"default", "param_decls", "help", "show_default", "metavar", "hidden",
           "rich_help_panel", "min", "max"}  # fmt: skip
"""typer parameter settings this parser applies (or that change only the help text)."""
HELP = {"--help", "-h", "--install-completion", "--show-completion"}


class _Unparsed(Exception):
    """The command line is not one this parser handles alone: typer answers it."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> typing.NoReturn:
        raise _Unparsed(message)


def main(argv: list[str] | None = None) -> None:
    """Run ``ctae ARGS``: a job of ``FAST_COMMANDS`` directly, anything else through typer.

    A catalog that cannot be used (``data_catalog.CatalogError``: busy past the wait, missing,
    not a catalog, an unreadable accounts file) ends any command with its message, without a
    traceback (exit 1 where there is no catalog yet, else 2)."""
    args = list(sys.argv[1:] if argv is None else argv)
    verbose = bool(args) and args[0] in ("-v", "--verbose")
    command = args[1:] if verbose else args
    try:
        if command and command[0] in FAST_COMMANDS and not HELP & set(command):
            code = run_fast(command[0], command[1:], verbose)
            if code is not None:
                if argv is None:  # the program itself, not a caller that goes on
                    exit_without_teardown(code)
                sys.exit(code)
        from jobs.cli import app

        app(args=args, prog_name="ctae")
    except Exception as err:
        if not _catalog_error(err):
            raise
        print(f"{' '.join(['ctae', *command[:1]])}: {err}", file=sys.stderr)
        # README "CLI reference": 1 where there is no catalog yet (CatalogMissingError, a
        # FileNotFoundError), 2 where it is busy or no catalog this ctae can use
        code = 1 if isinstance(err, FileNotFoundError) else 2
        if argv is None:
            exit_without_teardown(code)
        sys.exit(code)


def _catalog_error(err: BaseException) -> bool:
    """Whether ``err`` is a ``data_catalog.CatalogError`` (looked up only once the catalog
    package is loaded: ``ctae --help`` imports no DuckDB)."""
    errors = sys.modules.get("data_catalog.errors")
    return errors is not None and isinstance(err, errors.CatalogError)


def exit_without_teardown(code: int) -> typing.NoReturn:
    """End this process with ``code`` once the job is done, skipping the interpreter's teardown.

    After the ``atexit`` handlers (logging's flush, multiprocessing's clean-up) the interpreter
    would free every module and object one by one: with numpy, pydicom, SimpleITK and duckdb
    loaded that took a ``ctae ingest`` process 0.3-0.4 s at a load of ~8 (against 0.03 s here),
    after its last output. Every file and catalog connection of a job is closed by then.
    """
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed or broken pipe: nothing left to say
            pass
    os._exit(code)


def command_function(name: str) -> Callable[..., Any]:
    """The typer command function of a ``FAST_COMMANDS`` job (imports its module)."""
    from jobs.threads import prefer_passive_openmp

    prefer_passive_openmp()  # before the job module imports torch
    return getattr(importlib.import_module(COMMANDS[name][0]), FAST_COMMANDS[name])


def fast_arguments(function: Callable[..., Any], argv: list[str]) -> dict[str, Any]:
    """``function``'s keyword arguments from ``argv``, parsed as typer would parse them.

    Raises:
        _Unparsed: ``argv`` or one of the function's parameters needs typer.
    """
    from typer.utils import get_params_from_function  # typer's reading of the signature

    parser = _Parser(add_help=False, allow_abbrev=False)
    params = get_params_from_function(function)
    for name, meta in params.items():
        _add(parser, name, meta.annotation, meta.default)
    kwargs = vars(parser.parse_args(argv))
    for name, value in kwargs.items():  # typer's own bounds message for a value out of range
        low, high = params[name].default.min, params[name].default.max
        if value is not None and (
            (low is not None and value < low) or (high is not None and value > high)
        ):
            raise _Unparsed(f"{name}: out of range")
    return kwargs


def run_fast(name: str, argv: list[str], verbose: bool = False) -> int | None:
    """Run job ``name`` on ``argv`` and return its exit code; None when typer must parse."""
    function = command_function(name)
    try:
        kwargs = fast_arguments(function, argv)
    except _Unparsed:
        return None
    from typer import Abort, BadParameter, Exit

    configure_logging(verbose)
    try:
        function(**kwargs)
    except Exit as done:
        return done.exit_code
    except BadParameter as err:  # a value the job refused: said as typer says it
        err.show()
        return err.exit_code
    except (Abort, KeyboardInterrupt):
        print("Aborted!", file=sys.stderr)
        return 1
    return 0


def _add(parser: argparse.ArgumentParser, name: str, hint: Any, info: Any) -> None:
    """Add one typer parameter to ``parser``, or raise ``_Unparsed`` for a kind it lacks."""
    kind = type(info).__name__
    if kind not in ("OptionInfo", "ArgumentInfo"):
        raise _Unparsed(f"{name}: not a typer parameter")
    plain = vars(type(info)())
    if any(value != plain[key] for key, value in vars(info).items() if key not in HANDLED):
        raise _Unparsed(f"{name}: a typer setting this parser does not apply")
    many = typing.get_origin(hint) is list
    scalar = _scalar(typing.get_args(hint)[0] if many else hint)
    required = info.default is ...
    default = None if required else info.default
    if kind == "ArgumentInfo":
        if scalar is bool or info.param_decls or (many and not required):
            raise _Unparsed(f"{name}: an argument kind this parser does not handle")
        parser.add_argument(name, type=scalar, nargs="+" if many else None, default=default)
        return
    flags = list(info.param_decls) or ["--" + name.replace("_", "-")]
    if many or any("/" in flag for flag in flags):
        raise _Unparsed(f"{name}: an option kind this parser does not handle")
    if scalar is bool:
        if required or default is not False or not info.param_decls:
            raise _Unparsed(f"{name}: typer gives this flag a --no- form")
        parser.add_argument(*flags, dest=name, action="store_true")
        return
    parser.add_argument(*flags, dest=name, type=scalar, required=required, default=default)


def _scalar(hint: Any) -> type:
    """``str`` / ``int`` / ``float`` / ``Path`` / ``bool`` behind ``hint`` (``X | None`` too)."""
    if typing.get_origin(hint) in (typing.Union, UnionType):
        members = [m for m in typing.get_args(hint) if m is not NoneType]
        hint = members[0] if len(members) == 1 else None
    if hint in SCALARS or hint is bool:
        return hint
    raise _Unparsed(f"{hint!r}: a type this parser does not convert")
