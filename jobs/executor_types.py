"""What every executor shares: where work runs (``ExecutorConfig``) and what comes back
(``TaskResult``). Kept apart so the local pool and the Ray back-end import it, not each other."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

T = TypeVar("T")
R = TypeVar("R")
EXECUTORS = ("local", "ray")


@dataclass(frozen=True)
class ExecutorConfig:
    """Where per-scan work runs.

    Attributes:
        kind: ``local`` (process pool on this machine) or ``ray`` (a Ray cluster).
        workers: Local processes (default: CPU count; 1 runs in this process); on Ray the
            number of actors for stateful work (default: one per GPU, else per CPU).
        ray_address: Ray cluster address (``auto``, ``ray://host:10001``); None starts a
            local Ray instance for the job (or reuses one this process already started).
        max_retries: How often a task whose worker died is tried again before it is failed.
        start_method: How local pool processes start: None (the platform's default: ``fork`` on
            Linux, cheap, and a worker sees what this process set up) or ``forkserver`` (each
            worker forked from a clean server process). Work that runs torch threads needs the
            latter: a child forked from a process that ran them hangs when it starts its own
            (GNU OpenMP).
        preload: Modules the fork server imports once, so that its workers start without
            importing them again (with ``start_method="forkserver"`` only).
    """

    kind: Literal["local", "ray"] = "local"
    workers: int | None = None
    ray_address: str | None = None
    max_retries: int = 2
    start_method: Literal["forkserver"] | None = None
    preload: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in EXECUTORS:
            raise ValueError(f"--executor must be 'local' or 'ray', not {self.kind!r}")
        if self.workers is not None and self.workers < 1:
            raise ValueError(f"--workers must be >= 1, not {self.workers}")
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, not {self.max_retries}")
        if self.ray_address is not None and self.kind != "ray":
            raise ValueError("--ray-address needs --executor ray")
        if self.start_method not in (None, "forkserver"):
            raise ValueError(f"start_method must be None or 'forkserver', not {self.start_method!r}")

    @property
    def local_workers(self) -> int:
        """Processes of the local pool."""
        return self.workers or os.cpu_count() or 1


@dataclass(frozen=True)
class TaskResult(Generic[T, R]):
    """One input with either its result or the error that ended it."""

    item: T
    value: R | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def describe_error(err: BaseException) -> str:
    """``Type: message``, the form every failed TaskResult carries."""
    return f"{type(err).__name__}: {err}"

