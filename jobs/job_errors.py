"""What a job says when it stops before its work, and the exit code it stops with.

README "CLI reference", exit codes: **1** where nothing could be done yet — nothing ingested,
a run not yet trained or scored, too few scans to split (run the earlier job first) — and **2**
where the command line names something wrong: a run that is not in the catalog, a file that is
missing or unreadable, an option value or combination the job refuses. Every message is printed
as ``ctae COMMAND: message`` on standard error, without a traceback.
"""

from __future__ import annotations

import typer

NOT_READY = 1
"""Exit code: an earlier job must run first, or there is nothing to work on."""
BAD_INPUT = 2
"""Exit code: what the command line names is wrong; the message says what to change."""
INTERRUPTED = 130
"""Exit code: the job was stopped with Ctrl+C (128 + SIGINT, as a shell reports it)."""


class JobError(RuntimeError):
    """A job refused its input (``BAD_INPUT``) or found nothing to work on (``NOT_READY``)."""

    def __init__(self, message: str, *, exit_code: int = BAD_INPUT) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def exit_code_of(err: BaseException) -> int:
    """``err``'s exit code: a ``JobError``'s own, else ``BAD_INPUT`` (an option value refused as
    ``ValueError``, an executor that cannot be reached as ``RuntimeError``)."""
    return err.exit_code if isinstance(err, JobError) else BAD_INPUT


def stop(command: str, err: BaseException) -> typer.Exit:
    """Print ``err`` as ``ctae COMMAND: message`` and return the ``typer.Exit`` to raise."""
    typer.secho(f"ctae {command}: {err}", fg=typer.colors.RED, err=True)
    return typer.Exit(exit_code_of(err))
