"""How many CPU threads torch may use: the cores this process may run on that other processes
are not keeping busy.

Two busy threads on two cores with a third busy process stall each other (each parallel region
waits for the thread that shares its core), so a job that takes every core under load runs far
below the speed of one that leaves the busy core alone. Where the machine is already busy when a
job starts (``--threads`` may still ask for more threads than the free cores), a waiting thread
should sleep, not spin on the core the late thread needs: ``prefer_passive_openmp``. On an idle
machine it should spin a moment first, as OpenMP does by default: sleeping between the U-Net's
many small parallel regions made its training steps 1.5x slower.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

logger = logging.getLogger(__name__)

LOADAVG = Path("/proc/loadavg")
OWN_TASKS = Path("/proc/self/task")
WAIT_POLICY = "OMP_WAIT_POLICY"
SAMPLES = 5
SAMPLE_GAP_S = 0.01


def allowed_cores() -> int:
    """Cores this process may run on (its CPU affinity, e.g. under taskset or a batch system)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def busy_elsewhere(loadavg: Path = LOADAVG, samples: int = SAMPLES) -> int:
    """Runnable tasks of other processes right now (median of ``samples`` reads of
    /proc/loadavg, whose fourth field counts the runnable tasks, this process's own included);
    0 where it is missing."""
    counts = []
    for i in range(samples):
        try:
            running = int(loadavg.read_text().split()[3].split("/")[0])
        except (OSError, IndexError, ValueError):
            return 0
        counts.append(running - own_running())
        if i + 1 < samples:
            time.sleep(SAMPLE_GAP_S)
    # the median (of an odd count) without importing statistics: ~10 ms of a job's start at SAMPLES
    return max(0, sorted(counts)[len(counts) // 2])


def own_running(tasks: Path = OWN_TASKS) -> int:
    """This process's runnable threads (the one asking at least): torch's threads that are
    still busy are not another process's load."""
    running = 0
    for stat_file in tasks.glob("*/stat"):
        try:
            state = stat_file.read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue  # the thread ended meanwhile
        running += state == "R"
    return max(1, running)


def free_cores(loadavg: Path = LOADAVG) -> int:
    """Allowed cores minus those other processes keep busy; at least 1."""
    return max(1, allowed_cores() - busy_elsewhere(loadavg))


def set_torch_threads(requested: int | None = None, loadavg: Path = LOADAVG, source: str = "--threads") -> int:
    """Give torch ``requested`` intra-op threads (``source`` says who asked, for the log), else what
    ``OMP_NUM_THREADS`` says (torchrun and batch systems set it), else one per free core; returns
    the count."""
    import torch

    if requested is not None and requested < 1:
        raise ValueError(f"{source} must be >= 1, not {requested}")
    if requested is None and _user_chose(requested):
        source, threads = "OMP_NUM_THREADS", torch.get_num_threads()
    else:
        source, threads = (
            (source, requested) if requested else ("free cores", free_cores(loadavg))
        )
        torch.set_num_threads(threads)
    logger.info(
        "torch uses %d CPU thread(s) (%s; %d core(s) allowed)", threads, source, allowed_cores()
    )
    return threads


def _user_chose(requested: int | None) -> bool:
    """Whether the thread count is the user's: ``--threads``, or ``OMP_NUM_THREADS`` (torchrun
    and batch systems set it)."""
    return requested is not None or bool(os.environ.get("OMP_NUM_THREADS"))


def rechoose_torch_threads(requested: int | None, current: int, loadavg: Path = LOADAVG) -> int:
    """Between epochs, torch's thread count again from the free cores (a busy neighbour may
    have started or ended since the last choice); unchanged where ``--threads`` or
    ``OMP_NUM_THREADS`` chose it. Returns the count.

    Two threads that share a core with a busy process ran the tiny step at 0.41-0.60 steps/s,
    one thread at 0.66-0.75: a run that began on an idle machine would keep the slower count.
    """
    import torch

    if _user_chose(requested):
        return current
    threads = free_cores(loadavg)
    if threads != current:
        torch.set_num_threads(threads)
        logger.info(
            "torch now uses %d CPU thread(s) (free cores changed from %d)", threads, current
        )
    return threads


def prefer_passive_openmp(environ: dict[str, str] | None = None, loadavg: Path | None = None) -> str | None:
    """Have OpenMP threads that wait for the rest of a parallel region sleep instead of spinning
    where other processes keep a core busy as the job starts, unless the user chose a policy;
    on an idle machine leave OpenMP's default (spin a moment, then sleep). Returns the policy
    set, if any. Takes effect only before torch is first imported (libgomp reads it once).

    One read of the load, no waiting: a passing blip only brings back the sleeping threads every
    job had until stop 53. Measured on a 2-core machine (stop 53, ``tiny_dae``'s training step,
    8 cubes of 32³): idle, two threads ran 19-21 vol/s spinning and 12-13 sleeping (one thread
    13-15); beside a busy process, two threads ran about 6 spinning and 9-10 sleeping, one thread
    13-15 — which is what the free cores choose there. Earlier (stop 25, ``tiny``, load ~12):
    two spinning threads 0.06-0.22 steps/s, two sleeping 0.41-0.60, one thread 0.66-0.75."""
    environ = os.environ if environ is None else environ
    if WAIT_POLICY in environ or busy_elsewhere(loadavg or LOADAVG, samples=1) == 0:
        return None
    environ[WAIT_POLICY] = "PASSIVE"
    return "PASSIVE"
