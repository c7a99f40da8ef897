"""Start the journal absorber that copies acknowledged labels into the catalog within seconds
once no job holds it, even when no job runs afterwards to do it.

It runs as a child process (``data_catalog.absorber.absorb_until_idle``), not a server thread:
opening and filling DuckDB would hold the server's interpreter lock while reviewers wait for
their next scan, and a read-write connection in the server's own process would make its reads
fail. It starts when the journal has rows to absorb, and ends with the dashboard or after 20 s
with nothing to absorb.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from data_catalog.absorb import has_pending

_RUNNING: dict[str, subprocess.Popen] = {}


def start_absorber(catalog: str) -> None:
    """Make sure an absorber process runs for the catalog while its journal has new rows."""
    proc = _RUNNING.get(catalog)
    if (proc is not None and proc.poll() is None) or not has_pending(catalog):
        return
    code = "import sys; from data_catalog.absorber import absorb_until_idle as a; a(*sys.argv[1:2], int(sys.argv[2]))"
    _RUNNING[catalog] = subprocess.Popen(
        [sys.executable, "-c", code, catalog, str(os.getpid())],
        cwd=Path(__file__).resolve().parents[1],
        stdin=subprocess.DEVNULL,
    )
