"""The dashboard's journal absorber: copies acknowledged labels into the catalog within seconds
once no job holds it, even when no job runs afterwards to do it.

It runs as a child process of the dashboard (``python -m dashboard.absorber CATALOG``), not a
thread: opening and filling DuckDB would hold the server's interpreter lock while reviewers
wait for their next scan, and a read-write connection in the server's own process would make
its reads fail. It ends when the dashboard does.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import streamlit as st

from data_catalog import CatalogBusyError, connect
from data_catalog.absorb import has_pending

logger = logging.getLogger(__name__)

EVERY_S = 2.0


def absorb_until_orphaned(catalog: str, parent_pid: int) -> None:
    """Every 2 s, absorb the journal if it has new rows and no job holds the catalog."""
    while os.getppid() == parent_pid:
        time.sleep(EVERY_S)
        try:
            if has_pending(catalog):
                with connect(catalog, wait_s=0.0):  # absorbs on open; a job holding it: later
                    pass
        except CatalogBusyError:
            continue
        except Exception:  # the rows stay in the journal; try again next time
            logger.warning("journal absorber: %s not updated yet", catalog, exc_info=True)


@st.cache_resource(show_spinner=False)
def start_absorber(catalog: str) -> subprocess.Popen:
    """Start (once per server and catalog) the absorber process."""
    return subprocess.Popen(
        [sys.executable, "-m", "dashboard.absorber", catalog, str(os.getpid())],
        cwd=Path(__file__).resolve().parents[1],
        stdin=subprocess.DEVNULL,
    )


if __name__ == "__main__":
    absorb_until_orphaned(sys.argv[1], int(sys.argv[2]))
