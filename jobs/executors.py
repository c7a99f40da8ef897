"""Map one per-scan function over many inputs: a local process pool by default, Ray on request.

Workers only compute and return picklable results; the driver alone writes the catalog.
A worker that dies mid-task gets the task retried (bounded); after that the task comes back as
failed and the job goes on.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class ExecutorConfig:
    """Where per-scan work runs.

    Attributes:
        kind: ``local`` (process pool on this machine) or ``ray`` (an existing Ray cluster).
        workers: Local processes (default: CPU count); 1 runs in this process.
        ray_address: Ray cluster address (``auto``, ``ray://host:10001``); None starts a local Ray.
        max_retries: How often a task whose worker died is tried again before it is failed.
    """

    kind: Literal["local", "ray"] = "local"
    workers: int | None = None
    ray_address: str | None = None
    max_retries: int = 2

    def __post_init__(self) -> None:
        if self.kind not in ("local", "ray"):
            raise ValueError(f"executor must be 'local' or 'ray', not {self.kind!r}")


@dataclass(frozen=True)
class TaskResult(Generic[T, R]):
    """One input with either its result or the error that ended it."""

    item: T
    value: R | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def map_tasks(
    fn: Callable[[T], R], items: Iterable[T], config: ExecutorConfig = ExecutorConfig()
) -> Iterator[TaskResult[T, R]]:
    """Yield ``fn(item)`` for every item, in completion order, never raising for one item."""
    items = list(items)
    if not items:
        return iter(())
    if config.kind == "ray":
        return _map_ray(fn, items, config)
    if (config.workers or os.cpu_count() or 1) <= 1:
        return _map_inline(fn, items)
    return _map_local(fn, items, config)


def _map_inline(fn: Callable[[T], R], items: list[T]) -> Iterator[TaskResult[T, R]]:
    for item in items:
        try:
            yield TaskResult(item, fn(item))
        except Exception as err:  # one bad input never stops the job
            yield TaskResult(item, error=f"{type(err).__name__}: {err}")


def _map_local(
    fn: Callable[[T], R], items: list[T], config: ExecutorConfig
) -> Iterator[TaskResult[T, R]]:
    attempts = [0] * len(items)
    pending = list(range(len(items)))
    workers = config.workers or os.cpu_count() or 1
    while pending:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures: dict[Future, int] = {}
            for index in pending:
                attempts[index] += 1
                futures[pool.submit(fn, items[index])] = index
            pending = []
            remaining = set(futures)
            while remaining:
                done, remaining = wait(remaining, return_when=FIRST_COMPLETED)
                for future in done:
                    index = futures[future]
                    try:
                        yield TaskResult(items[index], future.result())
                    except BrokenProcessPool:
                        if attempts[index] > config.max_retries:
                            yield TaskResult(items[index], error=_died(attempts[index]))
                        else:
                            pending.append(index)
                    except Exception as err:
                        yield TaskResult(items[index], error=f"{type(err).__name__}: {err}")
        if pending:
            logger.warning("a worker died; retrying %d unfinished task(s)", len(pending))


def _died(attempts: int) -> str:
    return f"WorkerDied: the worker process died on each of {attempts} tries (out of memory?)"


def _map_ray(fn: Callable[[T], R], items: list[T], config: ExecutorConfig) -> Iterator[TaskResult[T, R]]:
    ray = _import_ray()
    if not ray.is_initialized():
        ray.init(address=config.ray_address, log_to_driver=False, include_dashboard=False)
    remote = ray.remote(max_retries=config.max_retries, retry_exceptions=False)(fn)
    refs = {remote.remote(item): item for item in items}
    remaining = list(refs)
    while remaining:
        done, remaining = ray.wait(remaining, num_returns=1)
        ref = done[0]
        try:
            yield TaskResult(refs[ref], ray.get(ref))
        except ray.exceptions.RayTaskError as err:
            cause = err.cause if err.cause is not None else err
            yield TaskResult(refs[ref], error=f"{type(cause).__name__}: {cause}")
        except ray.exceptions.RayError as err:  # worker crashed on every retry
            yield TaskResult(refs[ref], error=f"WorkerDied: {type(err).__name__}: {err}")


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as err:
        raise RuntimeError(
            "--executor ray needs Ray: pip install 'ctae[ray]' (or run with --executor local)"
        ) from err
    return ray
