"""The executor maps per-scan work, survives a dying worker, and reports bad inputs."""

from __future__ import annotations

import os
from pathlib import Path

from jobs.executors import ExecutorConfig, map_tasks


def square_or_fail(x: int) -> int:
    if x < 0:
        raise ValueError(f"negative input {x}")
    return x * x


def die_once(job: tuple[int, str]) -> int:
    """Kills its worker process the first time it sees a marker-less ``x == 3``."""
    x, marker_dir = job
    marker = Path(marker_dir) / f"died-{x}"
    if x == 3 and not marker.exists():
        marker.touch()
        os._exit(1)
    return x * 10


def always_die(x: int) -> int:
    os._exit(1)


def test_local_pool_returns_every_result_and_each_error():
    results = list(map_tasks(square_or_fail, [1, 2, -3, 4], ExecutorConfig(workers=2)))
    assert sorted(r.value for r in results if r.ok) == [1, 4, 16]
    (bad,) = [r for r in results if not r.ok]
    assert bad.item == -3 and "negative input -3" in bad.error


def test_worker_killed_mid_job_is_retried_and_job_finishes(tmp_path):
    jobs = [(x, str(tmp_path)) for x in range(6)]
    results = list(map_tasks(die_once, jobs, ExecutorConfig(workers=2, max_retries=2)))
    assert len(results) == 6, "each input comes back exactly once"
    assert sorted(r.value for r in results) == [0, 10, 20, 30, 40, 50]
    assert (tmp_path / "died-3").exists()


def test_task_that_always_kills_its_worker_is_failed_after_bounded_retries():
    results = list(map_tasks(always_die, [7], ExecutorConfig(workers=2, max_retries=1)))
    assert len(results) == 1 and "WorkerDied" in results[0].error and "2 tries" in results[0].error


def test_inline_mode_matches_pool():
    inline = sorted(r.value for r in map_tasks(square_or_fail, range(5), ExecutorConfig(workers=1)))
    pooled = sorted(r.value for r in map_tasks(square_or_fail, range(5), ExecutorConfig(workers=2)))
    assert inline == pooled == [0, 1, 4, 9, 16]
