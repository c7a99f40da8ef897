"""What every job shares: seeding, device choice, and a job_runs record."""

from __future__ import annotations

import logging
import os
import pickle
import random
import re
import socket
import sys
import threading
import typing
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ctae_core.io.processes import process_alive, process_state, start_tick
from data_catalog import connect
from data_catalog.job_runs import (
    JobProcess,
    finish_job_run,
    mark_interrupted,
    running_job_runs,
    running_jobs,
    start_job_run,
)
from data_catalog.settings import CatalogSettings
from jobs.job_errors import INTERRUPTED, JobError

logger = logging.getLogger(__name__)


def stack_lists(column: Any) -> Any:
    """(N, D) float64 array of a catalog column of equal-length lists (latents, histograms);
    None if any row is NULL or the lengths differ."""
    import numpy as np

    values = list(column)
    if not all(isinstance(v, list | tuple | np.ndarray) for v in values):  # NULL: None / NA / NaN
        return None
    if len({len(v) for v in values}) != 1:
        return None
    return np.stack([np.asarray(v, dtype=np.float64) for v in values])


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and (if imported) torch, so CPU runs repeat exactly."""
    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)
    try:
        import torch
    except ImportError:
        return
    torch.manual_seed(seed)


DEVICES = re.compile(r"auto|cpu|cuda(:\d+)?")
"""What ``--device`` takes."""


def check_device(requested: str) -> None:
    """Refuse a ``--device`` ctae does not run on, or a GPU this machine does not have (until
    stop 56 a traceback in ``ctae train``, and torch's list of device types in ``ctae score``).
    torch is imported only for a ``cuda`` request: ``ctae train`` checks this at its start,
    where torch is not loaded yet.

    Raises:
        JobError: what is wrong, and what to pass instead.
    """
    if not DEVICES.fullmatch(requested):
        raise JobError(f"--device {requested!r} is not one ctae runs on; pass auto, cpu, cuda or "
                       "cuda:N (the N-th GPU)")
    if requested.startswith("cuda"):
        import torch

        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(requested.partition(":")[2] or 0)
        if index >= count:
            have = f"{count} GPU(s) (cuda:0 to cuda:{count - 1})" if count else "no CUDA GPU"
            raise JobError(f"--device {requested} was asked for, but this machine has {have}; "
                           "pass --device auto or cpu")


def pick_device(requested: str = "auto") -> str:
    """``cuda`` when present (or asked for), else ``cpu``.

    Raises:
        JobError: ``check_device``'s refusals.
    """
    check_device(requested)
    if requested == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return requested


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h
KEEP_FREED_BYTES = 1 << 30
"""Blocks below this size come from the heap and freed memory up to it is kept for reuse."""


def reuse_freed_memory() -> None:
    """Have glibc's malloc reuse freed large blocks instead of returning each to the kernel.

    A series' arrays (~50 MB each for 512×512×100 slices) are above malloc's largest dynamic
    mmap threshold (32 MB), so each was mapped afresh and paid ~13,000 page faults: ~25 ms of
    system time per series in an ingest worker. Workers forked afterwards inherit the setting;
    elsewhere (not glibc) this does nothing.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(M_MMAP_THRESHOLD, KEEP_FREED_BYTES)
        libc.mallopt(M_TRIM_THRESHOLD, KEEP_FREED_BYTES)
    except (OSError, AttributeError):  # musl and others: freed memory goes back to the kernel
        logger.debug("glibc's mallopt is not available here")


def this_process(pid: int | None = None) -> JobProcess:
    """The id, machine and start tick of a process (default: this one)."""
    pid = os.getpid() if pid is None else pid
    return JobProcess(pid, socket.gethostname(), start_tick(pid))


def remove_dead_writers_parts(folder: Path) -> int:
    """Delete the part files in ``folder`` whose writer has died (a worker killed mid-write: its
    rename never comes); a live writer's, another job's perhaps, is left. Returns how many."""
    from ctae_core.io.volume_store import parts_in

    dead = [part for part, pid in parts_in(folder).items() if not process_alive(pid)]
    for part in dead:
        part.unlink(missing_ok=True)
    if dead:
        logger.info("removed %d unfinished volume file(s) of killed workers from %s", len(dead), folder)
    return len(dead)


def interrupt_dead_jobs(con: Any) -> int:
    """Mark ``interrupted`` the running job_runs of this machine whose process has died."""
    host = socket.gethostname()
    dead = [
        job_id
        for job_id, process in running_job_runs(con).items()
        if process_state(process, host) == "gone"
    ]
    if dead:
        logger.info("marking %d job run(s) of dead processes as interrupted", len(dead))
    return mark_interrupted(con, dead)


RUN_JOBS = ("train", "score", "embed")
"""Jobs that write a run (checkpoint, scores, latents, embedding): two of them at once on one
run would each repeat or undo the other's work (two trainings rewrite one checkpoint; a scoring
during a training scores a model that changes under it)."""


SCAN_REMOVING_JOBS = ("remove",)
"""Jobs that take scans out of the catalog: one of them and any other job at once would have the
other read, score or export scans whose rows and files are going (``ctae remove`` takes seconds)."""


class RunBusyError(JobError):
    """Another job of this machine is writing the same run, or removing scans."""


def refuse_a_busy_run(con: Any, job: str, args: dict[str, Any]) -> None:
    """Raise ``RunBusyError`` when a ``RUN_JOBS`` job starts on a run that a live process of
    this machine is already training, scoring or embedding, when any job starts while a
    ``SCAN_REMOVING_JOBS`` job runs, or a ``SCAN_REMOVING_JOBS`` job while any other runs (the
    dead were marked interrupted just before). A job recorded on another machine (a catalog on a
    shared disk), or before processes were recorded, cannot be checked: it is logged, not refused.
    """
    run_id = args.get("run_id") or args.get("run")
    others = running_jobs(con)
    if job not in SCAN_REMOVING_JOBS:  # a removal, or a job writing the same run
        same_run = job in RUN_JOBS and run_id
        others = [o for o in others if o.job in SCAN_REMOVING_JOBS
                  or same_run and o.job in RUN_JOBS and o.run_id == str(run_id)]
    host = socket.gethostname()
    for other in others:
        pid = other.process.pid
        if other.process.host == host and pid == os.getpid():
            continue  # this process's own row, left running by a job whose end was not recorded
        on = f"run {run_id}: " if other.job in RUN_JOBS and run_id else ""
        if other.process.host != host or pid is None:
            logger.warning("%s`ctae %s` is recorded as running since %s in process %s on %s; if "
                           "it still runs, the two jobs get in each other's way", on, other.job,
                           other.started_at, pid, other.process.host)
            continue
        if job in SCAN_REMOVING_JOBS or other.job in SCAN_REMOVING_JOBS:
            raise RunBusyError(
                f"the catalog is in use: `ctae {other.job}` has been running in process {pid} "
                f"since {other.started_at}, and scans cannot leave the catalog while another job "
                "reads or writes them; wait for it to end (or stop it), then run this again")
        raise RunBusyError(
            f"run {run_id!r} is in use: `ctae {other.job}` has been running on it in process "
            f"{pid} since {other.started_at}, and two jobs on one run would each repeat or "
            "undo the other's work; wait for it to end (or stop it), then run this again")


@dataclass
class JobRecord:
    """A running job's ``job_runs`` row: its summary counts, what ``on_start`` read in the
    opening connection, and writes left for the connection that records the end."""

    counts: dict[str, Any] = field(default_factory=dict)
    started: Any = None
    at_end: list[Callable[[Any], None]] = field(default_factory=list)
    job_id: str | None = None


@contextmanager
def job_run(settings: CatalogSettings, job: str, args: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Record a job_runs row around a job; the body fills the yielded dict with summary counts.

    Rows left ``running`` by killed jobs on this machine are marked ``interrupted`` first.
    """
    with job_record(settings, job, args) as record:
        yield record.counts


@contextmanager
def job_record(
    settings: CatalogSettings,
    job: str,
    args: dict[str, Any],
    on_start: Callable[[Any], Any] | None = None,
    *,
    overlap: Callable[[], None] | None = None,
) -> Iterator[JobRecord]:
    """``job_run`` in two catalog connections at most: ``on_start(con)`` runs in the one that
    records the start (its result is ``record.started``), and ``record.at_end``'s writes in the
    one that records the end, before it (a failing write marks the job ``failed`` and raises).

    ``overlap()`` runs in this process while the start is recorded: in a forked child where
    this process may fork (``fork_is_safe``), so that both run at once, else before it. A
    failure to record the start is raised after ``overlap`` returns, before the body runs.
    """
    process = this_process()
    if overlap is not None and fork_is_safe():
        job_id, started = _overlapped(_Forked(_start, settings, job, args, on_start, process),
                                      overlap, settings)  # fmt: skip
    else:
        if overlap is not None:
            overlap()
        job_id, started = _start(settings, job, args, on_start, process)
    record = JobRecord(started=started, job_id=job_id)
    try:
        yield record
    except KeyboardInterrupt:  # until stop 56 `failed`, "Aborted!" and exit 1 (README: not ready)
        _record_end(settings, job_id, "interrupted", record, raise_failure=False)
        again = " with --resume" if job == "train" else ""
        print(f"ctae {job}: interrupted (Ctrl+C); what it finished is kept: run the same command "
              f"again{again} to go on", file=sys.stderr)
        raise SystemExit(INTERRUPTED) from None
    except BaseException as err:
        if not args.get("redact_paths"):  # a message may name a source path
            record.counts["error"] = failure_words(err)
        _record_end(settings, job_id, "failed", record, raise_failure=False)
        raise
    _record_end(settings, job_id, "done", record, raise_failure=True)


def failure_words(err: BaseException, limit: int = 500) -> str:
    """How a job failed, as ``job_runs`` keeps it for `ctae status` and the Overview: a refusal's
    own message (a ``JobError``: what to do), else the exception's type and message."""
    if isinstance(err, JobError):
        said = str(err).strip()
    elif not str(err) and getattr(err, "exit_code", None) is not None:  # typer.Exit, SystemExit
        said = f"ended with exit code {err.exit_code}"
    else:
        said = f"{type(err).__name__}: {err}".strip().rstrip(":")
    return said if len(said) <= limit else said[: limit - 1] + "…"


def _overlapped(
    start: _Forked, overlap: Callable[[], None], settings: CatalogSettings
) -> tuple[str, Any]:
    """``overlap()`` while the start is recorded aside; the start's (job_id, result). Where
    ``overlap`` fails the job recorded meanwhile is marked ``failed``."""
    try:
        overlap()
    except BaseException:
        try:
            job_id, _ = start.result()
        except BaseException:  # the start failed too: nothing recorded to end
            job_id = None
        if job_id is not None:
            _record_end(settings, job_id, "failed", JobRecord(), raise_failure=False)
        raise  # overlap's own error
    return start.result()


def _start(
    settings: CatalogSettings,
    job: str,
    args: dict[str, Any],
    on_start: Callable[[Any], Any] | None,
    process: JobProcess,
) -> tuple[str, Any]:
    """Record that ``job`` started in ``process``; (its job_id, ``on_start(con)``)."""
    with connect(settings.catalog_path) as con:  # the catalog's lock: one job starts at a time
        interrupt_dead_jobs(con)
        refuse_a_busy_run(con, job, args)
        job_id = start_job_run(con, job, args, process)
        return job_id, on_start(con) if on_start is not None else None


def fork_is_safe() -> bool:
    """Whether this process may fork a child that goes on with Python code: a Linux process
    whose only thread is this one (a thread holding a lock at the fork would leave it held in
    the child)."""
    return sys.platform.startswith("linux") and threading.active_count() == 1


class _Forked:
    """``function(*args)`` computed in a forked child while this process goes on; ``result()``
    waits for it and returns it, or raises its exception.

    Recording a job's start (opening, creating or migrating the catalog) costs ~0.1 s; run
    aside, it overlaps the job's own imports (the DICOM readers) instead of preceding them.
    """

    def __init__(self, function: Callable[..., Any], *args: Any) -> None:
        for stream in (sys.stdout, sys.stderr):  # nothing buffered is written twice
            stream.flush()
        read_end, write_end = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:
            os.close(read_end)
            _answer(write_end, function, args)  # never returns
        os.close(write_end)
        self.read_end = read_end

    def result(self) -> Any:
        """The child's result (its exception raised here)."""
        with os.fdopen(self.read_end, "rb") as source:
            payload = source.read()
        _, status = os.waitpid(self.pid, 0)
        if not payload:
            raise RuntimeError(
                f"the process recording the job's start ended without an answer (wait status "
                f"{status}); run the job again"
            )
        ok, value = pickle.loads(payload)
        if not ok:
            raise value
        return value


def _answer(write_end: int, function: Callable[..., Any], args: tuple) -> typing.NoReturn:
    """In the forked child: send ``function(*args)`` (or its exception) through ``write_end``
    and leave without running the parent's exit handlers or teardown."""
    code = 0
    try:
        try:
            payload = pickle.dumps((True, function(*args)))
        except BaseException as err:  # sent to the parent, which raises it
            payload = _pickled_error(err)
        with os.fdopen(write_end, "wb") as out:
            out.write(payload)
    except BaseException:
        code = 1
    finally:
        os._exit(code)


def _pickled_error(err: BaseException) -> bytes:
    """``err`` pickled for the parent; one that does not pickle, as an ``OSError`` saying it."""
    try:
        payload = pickle.dumps((False, err))
        pickle.loads(payload)
        return payload
    except Exception:
        return pickle.dumps((False, OSError(f"{type(err).__name__}: {err}")))


def _record_end(
    settings: CatalogSettings, job_id: str, status: str, record: JobRecord, raise_failure: bool
) -> None:
    """Make the job's last writes and record how it ended. A failing write marks the job
    ``failed`` and is raised when ``raise_failure``; failing to record the end alone is only
    logged (the job's own outcome matters more than its bookkeeping)."""
    failure: BaseException | None = None
    try:
        with connect(settings.catalog_path) as con:
            for write in record.at_end:
                try:
                    write(con)
                except Exception as err:
                    failure, status = err, "failed"
                    break
            finish_job_run(con, job_id, status, record.counts)
    except Exception as err:
        failure = failure or (err if record.at_end else None)
        logger.warning("could not record the end of job %s in job_runs", job_id, exc_info=True)
    if failure is not None:
        if raise_failure:
            raise failure
        logger.warning("the last writes of job %s failed", job_id, exc_info=failure)
