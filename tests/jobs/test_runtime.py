"""Process settings every job shares."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_freed_series_arrays_are_reused_without_new_page_faults():
    # ten 50 MB arrays one after another, as a worker's series: a fresh mapping faults every
    # page in again (numpy asks for 2 MB pages, SimpleITK gets 4 KiB ones); reused heap memory
    # faults only the first time
    probe = (
        "import resource, sys\n"
        "import numpy as np\n"
        "from jobs.runtime import reuse_freed_memory\n"
        "if sys.argv[1] == 'reuse':\n"
        "    reuse_freed_memory()\n"
        "np.ones(25_000_000, np.int16).sum()\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
        "for _ in range(10):\n"
        "    np.ones(25_000_000, np.int16).sum()\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)\n"
    )
    faults = {}
    for mode in ("plain", "reuse"):
        done = subprocess.run([sys.executable, "-c", probe, mode], cwd=ROOT, capture_output=True,
                              text=True, env={"PYTHONPATH": str(ROOT)}, timeout=60, check=True)
        faults[mode] = int(done.stdout)
    assert faults["plain"] >= 10 * 24  # 50 MB: at least 24 pages of 2 MiB, every time
    assert faults["reuse"] * 5 < faults["plain"]
