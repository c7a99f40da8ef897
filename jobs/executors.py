"""Map one per-scan function over many inputs: a local process pool by default, Ray on request.

Workers only compute and return picklable results; the driver alone writes the catalog.
A worker that dies mid-task gets the task retried (bounded); after that the task comes back as
failed and the job goes on. Only a task that was running when its worker died is charged a try:
tasks still queued in a broken pool go back to the queue for free, and charged tasks are retried
one process at a time, so an innocent neighbour of a crashing scan is never failed with it.

Stateful work (a model loaded once per worker) goes through ``map_stateful`` with a picklable
zero-argument ``factory`` that builds the per-item function inside each worker process
(local) or actor (Ray, see ``jobs/ray_executor.py``).
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import select
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from ctae_core.io.processes import process_alive
from jobs.executor_types import EXECUTORS, ExecutorConfig, TaskResult, describe_error

logger = logging.getLogger(__name__)

__all__ = ["EXECUTORS", "ExecutorConfig", "TaskResult", "describe_error", "map_in_batches", "map_stateful",
           "map_tasks"]

T = TypeVar("T")
R = TypeVar("R")
_QUEUED, _RUNNING, _FINISHED = 0, 1, 2
LOCAL = ExecutorConfig()
"""The default: a local process pool with one worker per core."""


def map_tasks(
    fn: Callable[[T], R], items: Iterable[T], config: ExecutorConfig = LOCAL
) -> Iterator[TaskResult[T, R]]:
    """Yield ``fn(item)`` for every item, in completion order, never raising for one item.

    ``fn`` and the items must be picklable (module-level functions, ``functools.partial``).
    """
    return map_stateful(_Constant(fn), items, config)


def map_in_batches(
    fn: Callable[[T], R], items: Iterable[T], write: Callable[[list[R]], int],
    on_failure: Callable[[T, str], None], config: ExecutorConfig = LOCAL, batch_size: int = 32,
) -> tuple[int, int]:
    """``map_tasks`` whose results ``write`` stores ``batch_size`` at a time as they come (a
    killed job loses one batch at most); a failed item goes to ``on_failure(item, error)``.
    Returns (rows written, items failed)."""
    batch: list[R] = []
    written = failed = 0
    for result in map_tasks(fn, items, config):
        if not result.ok:
            failed += 1
            on_failure(result.item, str(result.error))
            continue
        batch.append(result.value)
        if len(batch) >= batch_size:
            written += write(batch)
            batch = []
    if batch:
        written += write(batch)
    return written, failed


def map_stateful(
    factory: Callable[[], Callable[[T], R]],
    items: Iterable[T],
    config: ExecutorConfig,
    *,
    actors: bool = False,
) -> Iterator[TaskResult[T, R]]:
    """Like ``map_tasks``, with the per-item function built once per worker by ``factory()``.

    Args:
        factory: Picklable zero-argument callable returning the per-item function (e.g. one
            that loads a model). An exception it raises fails every item it would have run.
        items: The inputs, each yielded back exactly once with its result or error.
        config: Where to run.
        actors: On Ray, run on a pool of actors (one GPU each where the cluster has GPUs)
            instead of tasks; ignored locally.
    """
    items = list(items)
    if not items:
        return iter(())
    if config.kind == "ray":
        from jobs.ray_executor import map_actors, map_ray_tasks

        return (map_actors if actors else map_ray_tasks)(factory, items, config)
    if config.local_workers <= 1:
        return _map_inline(factory, items)
    return _map_local(factory, items, config)


class _Constant:
    """A factory that returns an already-built function (picklable when the function is)."""

    def __init__(self, fn: Callable[[Any], Any]) -> None:
        self.fn = fn

    def __call__(self) -> Callable[[Any], Any]:
        return self.fn


def _map_inline(
    factory: Callable[[], Callable[[T], R]], items: list[T]
) -> Iterator[TaskResult[T, R]]:
    fn = factory()  # in this process a setup error (e.g. a corrupt checkpoint) ends the job
    for item in items:
        try:
            yield TaskResult(item, fn(item))
        except Exception as err:  # one bad input never stops the job
            yield TaskResult(item, error=describe_error(err))


# ---------------------------------------------------------------- local process pool
_WORKER: dict[str, Any] = {}


_PR_SET_PDEATHSIG = 1


def _die_with_driver(driver_pid: int, forked: bool) -> None:
    """End this worker when the driver dies, even by ``kill -9``. Forked from the driver: the
    kernel kills it (``PR_SET_PDEATHSIG``, Linux). Started by a fork server: the server and its
    workers keep each other alive (each worker holds the pipe whose end tells the server its
    client is gone), so a thread waits on the driver itself and ends the worker."""
    if not forked:
        threading.Thread(target=_exit_with, args=(driver_pid,), daemon=True, name="driver-watch").start()
        return
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        except (OSError, AttributeError):
            logger.debug("prctl(PR_SET_PDEATHSIG) unavailable; workers may outlive a kill -9")
    if os.getppid() != driver_pid:  # it died before the request took effect
        os._exit(1)


def _exit_with(pid: int) -> None:
    """Wait for process ``pid`` to end (its pidfd, Linux ≥ 5.3; else polled once a second),
    then end this process."""
    try:
        select.select([os.pidfd_open(pid)], [], [])
    except ProcessLookupError:
        pass  # already gone
    except (AttributeError, OSError):  # no pidfd here
        while process_alive(pid):
            time.sleep(1.0)
    os._exit(1)


def _init_worker(
    flags: Any, factory: Callable[[], Callable[[Any], Any]], driver_pid: int, forked: bool = True,
    log_level: int | None = None,
) -> None:
    """Pool initializer: die with the driver, log as it does (``log_level``: a worker not forked
    from it has no handlers), keep the shared task-state array and build the per-item function."""
    _die_with_driver(driver_pid, forked)
    if log_level is not None:
        from jobs.log_setup import configure_logging

        configure_logging(verbose=log_level <= logging.DEBUG)
    _WORKER["flags"] = flags
    try:
        _WORKER["fn"] = factory()
    except Exception as err:  # reported per item, not as an endlessly broken pool
        _WORKER["setup_error"] = f"worker setup failed: {describe_error(err)}"


def _run_tracked(index: int, item: Any) -> Any:
    """Run one item in a pool worker, marking it running and then finished in shared memory."""
    flags = _WORKER["flags"]
    flags[index] = _RUNNING
    try:
        if "setup_error" in _WORKER:
            raise RuntimeError(_WORKER["setup_error"])
        return _WORKER["fn"](item)
    finally:
        flags[index] = _FINISHED


def _map_local(
    factory: Callable[[], Callable[[T], R]], items: list[T], config: ExecutorConfig
) -> Iterator[TaskResult[T, R]]:
    context = _context(config)
    flags = context.Array("b", len(items), lock=False)
    attempts = [0] * len(items)
    queued, suspects = list(range(len(items))), []
    while queued or suspects:
        # charged tasks run one at a time, so a second death is blamed on the right one
        batch, width = (suspects, 1) if suspects else (queued, config.local_workers)
        if batch is suspects:
            suspects = []
        else:
            queued = []
        for index, result in _pool_round(factory, items, batch, width, flags, context):
            if result is not None:
                yield result
            elif flags[index] == _QUEUED:
                queued.append(index)  # never started: not its fault
            else:
                attempts[index] += 1
                if attempts[index] > config.max_retries:
                    yield TaskResult(items[index], error=_died(attempts[index]))
                else:
                    suspects.append(index)
        if queued or suspects:
            logger.warning(
                "a worker died; retrying %d unfinished task(s)", len(queued) + len(suspects)
            )


def _pool_round(
    factory: Callable[[], Callable[[T], R]],
    items: list[T],
    batch: list[int],
    width: int,
    flags: Any,
    context: multiprocessing.context.BaseContext,
) -> Iterator[tuple[int, TaskResult[T, R] | None]]:
    """Run ``batch`` in one pool; yields (index, result), or (index, None) if its worker died."""
    for index in batch:
        flags[index] = _QUEUED
    pool = ProcessPoolExecutor(
        max_workers=min(width, len(batch)),
        mp_context=context,
        initializer=_init_worker,
        initargs=(flags, factory, os.getpid(), *_inherited(context)),
    )
    try:
        futures: dict[Future, int] = {pool.submit(_run_tracked, i, items[i]): i for i in batch}
        remaining = set(futures)
        while remaining:
            done, remaining = wait(remaining, return_when=FIRST_COMPLETED)
            for future in done:
                index = futures[future]
                try:
                    yield index, TaskResult(items[index], future.result())
                except BrokenProcessPool:
                    yield index, None
                except Exception as err:
                    yield index, TaskResult(items[index], error=describe_error(err))
    except BaseException:  # Ctrl+C, or the caller stopped reading: no task is waited for
        _stop(pool)
        raise
    pool.shutdown(wait=True)


def _stop(pool: ProcessPoolExecutor) -> None:
    """End ``pool`` now: its queued tasks cancelled, its workers terminated. Leaving its ``with``
    on Ctrl+C waited for every queued task (``shutdown(wait=True)``): until stop 56 a
    `ctae score` stopped with Ctrl+C went on, or hung, with no word."""
    workers = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for worker in workers:
        worker.terminate()
    for worker in workers:
        worker.join(timeout=10)


def _inherited(context: multiprocessing.context.BaseContext) -> tuple[bool, int | None]:
    """(forked, log level) for ``_init_worker``: a forked worker has the driver as its parent
    and its logging already; one started by a fork server has neither."""
    if context.get_start_method() == "fork":
        return True, None
    root = logging.getLogger()
    return False, (root.getEffectiveLevel() if root.handlers else None)


def _context(config: ExecutorConfig) -> multiprocessing.context.BaseContext:
    """The pool's start method (``ExecutorConfig.start_method``); a fork server imports
    ``config.preload`` once, before its first worker."""
    if config.start_method is None:
        return multiprocessing.get_context()
    context = multiprocessing.get_context(config.start_method)
    if config.preload:
        context.set_forkserver_preload(list(config.preload))  # type: ignore[attr-defined]
    return context


def _died(attempts: int) -> str:
    return (
        f"WorkerDied: the worker process died on each of {attempts} tries "
        "(out of memory? try fewer --workers)"
    )
