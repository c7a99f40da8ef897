"""The executor maps per-scan work, survives a dying worker, and reports bad inputs."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jobs.executors import ExecutorConfig, map_in_batches, map_stateful, map_tasks
from tests.chaos_factory import alive, descendants

ROOT = Path(__file__).resolve().parents[2]


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


def test_results_are_written_in_batches_as_they_come_and_failures_reported():
    # what the measures of stored scans (jobs/acquisition.py, jobs/error_regions.py) write with:
    # a killed job loses one batch at most
    batches, failures = [], []

    def write(rows: list[int]) -> int:
        batches.append(sorted(rows))
        return len(rows)

    written, failed = map_in_batches(square_or_fail, [1, 2, -3, 4, 5, 6, -7], write,
                                     lambda item, error: failures.append((item, error)),
                                     ExecutorConfig(workers=1), batch_size=2)
    assert (written, failed) == (5, 2)
    assert [len(b) for b in batches] == [2, 2, 1]
    assert sorted(v for b in batches for v in b) == [1, 4, 16, 25, 36]
    assert sorted(item for item, _ in failures) == [-7, -3] and "negative input -3" in dict(failures)[-3]


@pytest.mark.parametrize("start_method", [None, "forkserver"])
def test_worker_killed_mid_job_is_retried_and_job_finishes(tmp_path, start_method):
    jobs = [(x, str(tmp_path)) for x in range(6)]
    config = ExecutorConfig(workers=2, max_retries=2, start_method=start_method)
    results = list(map_tasks(die_once, jobs, config))
    assert len(results) == 6, "each input comes back exactly once"
    assert sorted(r.value for r in results) == [0, 10, 20, 30, 40, 50]
    assert (tmp_path / "died-3").exists()


def test_task_that_always_kills_its_worker_is_failed_after_bounded_retries():
    results = list(map_tasks(always_die, [7], ExecutorConfig(workers=2, max_retries=1)))
    assert len(results) == 1 and "WorkerDied" in results[0].error and "2 tries" in results[0].error


def test_a_fork_server_pool_returns_every_result_and_rejects_other_start_methods():
    results = list(map_tasks(square_or_fail, [1, 2, -3, 4], ExecutorConfig(workers=2, start_method="forkserver",
                                                                           preload=("json",))))
    assert sorted(r.value for r in results if r.ok) == [1, 4, 16]
    assert [r.item for r in results if not r.ok] == [-3]
    with pytest.raises(ValueError, match="start_method"):
        ExecutorConfig(start_method="spawn")  # type: ignore[arg-type]


def test_inline_mode_matches_pool():
    inline = sorted(r.value for r in map_tasks(square_or_fail, range(5), ExecutorConfig(workers=1)))
    pooled = sorted(r.value for r in map_tasks(square_or_fail, range(5), ExecutorConfig(workers=2)))
    assert inline == pooled == [0, 1, 4, 9, 16]


def die_on_three(x: int) -> int:
    """Kills its worker every time it sees 3; any other input is fine."""
    if x == 3:
        os._exit(1)
    return x + 100


def test_neighbours_of_a_crashing_task_are_never_failed_with_it():
    results = list(map_tasks(die_on_three, range(8), ExecutorConfig(workers=2, max_retries=1)))
    assert len(results) == 8
    good = sorted(r.value for r in results if r.ok)
    assert good == [100, 101, 102, 104, 105, 106, 107], "only the culprit may fail"
    (bad,) = [r for r in results if not r.ok]
    assert bad.item == 3 and "2 tries" in bad.error


class PidTagger:
    """Factory whose per-item function reports (worker pid, id of the build that made it)."""

    def __call__(self):
        import uuid

        build = uuid.uuid4().hex
        return lambda x: (os.getpid(), build, x * 2)


class BrokenSetup:
    def __call__(self):
        raise OSError("checkpoint /nowhere/model.pt is missing")


def test_stateful_work_is_set_up_once_per_worker_process():
    results = list(map_stateful(PidTagger(), range(12), ExecutorConfig(workers=2)))
    assert sorted(r.value[2] for r in results) == [2 * x for x in range(12)]
    builds_by_pid: dict[int, set[str]] = {}
    for r in results:
        builds_by_pid.setdefault(r.value[0], set()).add(r.value[1])
    assert 1 <= len(builds_by_pid) <= 2 and all(len(b) == 1 for b in builds_by_pid.values())
    assert os.getpid() not in builds_by_pid, "work ran in pool processes, not the driver"


def test_setup_failure_in_a_pool_fails_each_item_with_its_cause():
    results = list(map_stateful(BrokenSetup(), [1, 2, 3], ExecutorConfig(workers=2)))
    assert len(results) == 3
    assert all("worker setup failed" in r.error and "/nowhere/model.pt" in r.error for r in results)


def test_setup_failure_inline_ends_the_job():
    with pytest.raises(OSError, match="/nowhere/model.pt"):
        list(map_stateful(BrokenSetup(), [1], ExecutorConfig(workers=1)))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "dask"}, "'local' or 'ray'"),
        ({"workers": 0}, "--workers must be >= 1"),
        ({"ray_address": "auto"}, "--ray-address needs --executor ray"),
    ],
)
def test_bad_executor_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ExecutorConfig(**kwargs)


@pytest.mark.parametrize("command", ["ingest", "score", "embed"])
def test_cli_refuses_ray_address_without_ray_and_unknown_executors(command, settings, tmp_path):
    from typer.testing import CliRunner

    from jobs.cli import app

    target = [str(tmp_path)] if command == "ingest" else ["--run", "r"]
    base = [command, *target, "--catalog", str(settings.catalog_path), "--no-progress"]
    result = CliRunner().invoke(app, [*base, "--ray-address", "auto"])
    assert result.exit_code == 2 and "--ray-address needs --executor ray" in result.output
    result = CliRunner().invoke(app, [*base, "--executor", "dask"])
    assert result.exit_code == 2 and "--executor must be one of local, ray" in result.output


@pytest.mark.parametrize(("start_method", "processes"), [(None, 2), ("forkserver", 4)])
def test_a_driver_killed_mid_map_leaves_no_process_behind(start_method, processes):
    """kill -9 of the driver while two workers sleep: forked workers die with it (the kernel's
    parent-death signal), and so do a fork server's, its server and resource tracker (2 + 2)."""
    config = f"ExecutorConfig(workers=2, start_method={start_method!r})"
    driver = subprocess.Popen([sys.executable, "-c", "import time; from jobs.executors import ExecutorConfig, "
                               f"map_tasks; list(map_tasks(time.sleep, [60] * 4, {config}))"], cwd=ROOT)
    deadline = time.monotonic() + 60
    while len(family := descendants(driver.pid)) < processes and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(family) == processes, family
    driver.kill()
    driver.wait()
    deadline = time.monotonic() + 5
    while (left := [pid for pid in family if alive(pid)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert left == [], f"{len(left)} of the driver's {processes} processes outlived it by 5 s"



def sleep_then_echo(x: int) -> int:
    time.sleep(0.05 if x == 0 else 3.0)
    return x


def test_a_pool_left_on_ctrl_c_runs_no_more_tasks_and_leaves_no_worker():
    # until stop 56 leaving the pool waited for every queued task (ProcessPoolExecutor's
    # shutdown(wait=True)): `ctae score` stopped with Ctrl+C went on scoring, or hung
    before = set(descendants(os.getpid()))  # an earlier test's fork server, resource tracker
    results = map_tasks(sleep_then_echo, list(range(12)), ExecutorConfig(workers=2))
    first = next(results)  # the quick task; 11 of 3 s each remain, ~16 s in two workers
    assert first.ok and first.value == 0
    workers = {pid for pid in set(descendants(os.getpid())) - before
               if not any(helper in Path(f"/proc/{pid}/cmdline").read_bytes()
                          for helper in (b"resource_tracker", b"forkserver"))}
    assert len(workers) == 2
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        results.throw(KeyboardInterrupt())  # as Ctrl+C arrives while the job waits on the pool
    assert time.monotonic() - started < 2.5
    assert not [pid for pid in workers if alive(pid)]
