"""torch's thread count follows the cores other processes leave free."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from jobs import threads


def _loadavg(tmp_path, running: int):
    path = tmp_path / f"loadavg{running}"
    path.write_text(f"1.52 0.88 0.36 {running}/91 11047\n")  # running tasks, this one included
    return path


def test_busy_elsewhere_counts_the_other_runnable_tasks(tmp_path):
    assert threads.busy_elsewhere(_loadavg(tmp_path, 3)) == 2
    assert threads.busy_elsewhere(_loadavg(tmp_path, 1)) == 0
    assert threads.busy_elsewhere(tmp_path / "absent") == 0


def test_free_cores_leave_the_busy_ones_alone(tmp_path):
    cores = threads.allowed_cores()
    assert threads.free_cores(_loadavg(tmp_path, 1)) == cores
    assert threads.free_cores(_loadavg(tmp_path, 2)) == max(1, cores - 1)
    assert threads.free_cores(_loadavg(tmp_path, cores + 5)) == 1  # never none


def test_threads_option_then_omp_num_threads_then_free_cores(tmp_path, monkeypatch):
    before = torch.get_num_threads()
    crowded = _loadavg(tmp_path, threads.allowed_cores() + 5)
    try:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        assert threads.set_torch_threads(None, crowded) == 1 and torch.get_num_threads() == 1
        assert threads.set_torch_threads(2, crowded) == 2 and torch.get_num_threads() == 2
        monkeypatch.setenv("OMP_NUM_THREADS", "2")
        assert threads.set_torch_threads(None, crowded) == 2  # torchrun / the batch system decided
        with pytest.raises(ValueError, match="--threads must be >= 1"):
            threads.set_torch_threads(0)
    finally:
        torch.set_num_threads(before)


_WAIT_POLICY_SEEN = (
    "import sys, os; from pathlib import Path; import jobs.threads as t; t.LOADAVG = Path(sys.argv[1]); "
    "from jobs.cli import load_command; assert 'torch' not in sys.modules; "
    "load_command(sys.argv[2]); import torch; torch.ones(2).sum(); print(os.environ.get('OMP_WAIT_POLICY', '-'))"
)


@pytest.mark.parametrize(("command", "running", "chosen", "seen"), [
    ("train", 1, None, "-"),  # idle: OpenMP's own default, spin a moment then sleep
    ("train", 3, None, "PASSIVE"),  # two other runnable tasks: waiting threads sleep
    ("train", 3, "ACTIVE", "ACTIVE"),  # the user's choice stands
    ("train", 1, "PASSIVE", "PASSIVE"),
    ("demo", 3, None, "-"),  # its stages, processes of their own, choose as they start
])
def test_jobs_start_openmp_sleeping_on_a_busy_machine_unless_the_user_chose(tmp_path, command, running, chosen,
                                                                             seen):
    env = {k: v for k, v in os.environ.items() if k != threads.WAIT_POLICY}
    if chosen:
        env[threads.WAIT_POLICY] = chosen
    done = subprocess.run(
        [sys.executable, "-c", _WAIT_POLICY_SEEN, str(_loadavg(tmp_path, running)), command], env=env,
        capture_output=True, text=True, check=True,
    )
    assert done.stdout.split() == [seen]


def test_wait_policy_is_read_from_the_load_once(tmp_path):
    environ: dict[str, str] = {}
    assert threads.prefer_passive_openmp(environ, _loadavg(tmp_path, 1)) is None and environ == {}
    assert threads.prefer_passive_openmp(environ, _loadavg(tmp_path, 2)) == "PASSIVE"
    assert environ == {threads.WAIT_POLICY: "PASSIVE"}
    assert threads.prefer_passive_openmp(environ, tmp_path / "absent") is None  # already chosen


def test_own_running_threads_are_not_counted_as_busy_elsewhere(tmp_path):
    tasks = tmp_path / "task"
    for tid, state in ((11, "R"), (12, "S"), (13, "R"), (14, "D")):
        (tasks / str(tid)).mkdir(parents=True)
        (tasks / str(tid) / "stat").write_text(f"{tid} (pt_main (x)) {state} 1 11 11 0 -1\n")
    assert threads.own_running(tasks) == 2
    assert threads.own_running(tmp_path / "none") == 1  # the asking thread, at least


def test_thread_count_is_chosen_again_between_epochs_unless_the_user_chose(tmp_path, monkeypatch):
    before = torch.get_num_threads()
    cores = threads.allowed_cores()
    crowded, idle = _loadavg(tmp_path, cores + 5), _loadavg(tmp_path, 1)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    try:
        assert threads.rechoose_torch_threads(None, cores, crowded) == 1
        assert torch.get_num_threads() == 1  # a neighbour started: leave its core alone
        assert threads.rechoose_torch_threads(None, 1, idle) == cores == torch.get_num_threads()
        assert threads.rechoose_torch_threads(2, 2, crowded) == 2  # --threads 2 stays
        monkeypatch.setenv("OMP_NUM_THREADS", "2")
        assert threads.rechoose_torch_threads(None, 2, crowded) == 2
    finally:
        torch.set_num_threads(before)
