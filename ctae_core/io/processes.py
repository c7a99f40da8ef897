"""Whether a process a job recorded still runs: read by the jobs (to mark a killed job
interrupted, for ``ctae status``) and by the dashboard (to tell a running job from a dead one)."""

from __future__ import annotations

import os
import socket
from typing import Protocol


class RecordedProcess(Protocol):
    """What a job records of its process: id, machine, and start tick (tells a reused pid apart)."""

    pid: int | None
    host: str | None
    process_start: str | None


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (any user's)."""
    try:
        os.kill(pid, 0)  # no signal sent: only whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        pass
    return True


def _stat(pid: int) -> list[bytes]:
    """The fields of ``/proc/PID/stat`` after the command name (Linux), [] where unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return []


def start_tick(pid: int, fields: list[bytes] | None = None) -> str | None:
    """Clock ticks after boot when ``pid`` started (Linux; from ``fields`` where already read),
    None where unknown."""
    fields = _stat(pid) if fields is None else fields
    return fields[19].decode() if len(fields) > 19 else None


def _is_alive(process: RecordedProcess) -> bool:
    """Whether the recorded process still runs (on this machine): a killed job that its parent
    has not yet reaped (a zombie) has ended, and a pid taken by a later process is not it."""
    if process.pid is None:
        return True  # recorded before catalog v4: nothing to go on
    if not process_alive(process.pid):
        return False
    fields = _stat(process.pid)
    if fields[:1] == [b"Z"]:
        return False
    if process.process_start is None:
        return True
    return start_tick(process.pid, fields) in (process.process_start, None)


def process_state(process: RecordedProcess, host: str | None = None) -> str:
    """What the process recorded for a running job is now: ``running``, ``gone`` (it ended
    without recording its end: killed, or its machine restarted; the next job on the catalog
    marks it interrupted), or ``not checked`` (it runs on another machine than ``host``, this
    one by default)."""
    if process.host != (host or socket.gethostname()):
        return "not checked"
    return "running" if _is_alive(process) else "gone"
