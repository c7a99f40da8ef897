"""How many local processes `ctae score` starts when --workers is not given."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from jobs import score_workers, threads

GIB = 2**30


@pytest.fixture()
def machine(monkeypatch):
    """Set the free cores and available memory the default sees."""

    def set_machine(cores: int, memory_gib: float) -> None:
        monkeypatch.setattr(threads, "free_cores", lambda *a, **k: cores)
        monkeypatch.setattr(score_workers, "available_memory_bytes", lambda: int(memory_gib * GIB))

    return set_machine


def test_one_single_threaded_process_per_free_core_where_memory_and_batches_allow(machine):
    machine(cores=2, memory_gib=20)
    assert score_workers.default_local_workers("cpu", batches=90) == 2
    machine(cores=4, memory_gib=4 * score_workers.WORKER_PEAK_GIB)
    assert score_workers.default_local_workers("cpu", batches=4) == 4


def test_one_process_with_every_core_otherwise(machine):
    machine(cores=2, memory_gib=20)
    assert score_workers.default_local_workers("cpu", batches=1) == 1  # fewer batches than cores
    machine(cores=1, memory_gib=20)
    assert score_workers.default_local_workers("cpu", batches=90) == 1
    machine(cores=8, memory_gib=8 * score_workers.WORKER_PEAK_GIB - 1)  # a byte short of eight
    assert score_workers.default_local_workers("cpu", batches=90) == 1
    machine(cores=2, memory_gib=0)  # memory unknown
    assert score_workers.default_local_workers("cpu", batches=90) == 1


def test_available_memory_is_read_from_the_kernel():
    available = score_workers.available_memory_bytes()
    if not Path("/proc/meminfo").exists():
        pytest.skip("no /proc/meminfo on this system")
    total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    assert 0 < available <= total


def test_threads_per_process_divide_the_free_cores_among_the_default_processes(machine):
    machine(cores=4, memory_gib=20)
    assert score_workers.default_local_workers("cpu", batches=90, threads=2) == 2
    machine(cores=2, memory_gib=20)
    assert score_workers.default_local_workers("cpu", batches=90, threads=2) == 1
    assert score_workers.default_local_workers("cpu", batches=90, threads=1) == 2
