"""The dashboard's journal absorber: a child process that copies new review-journal rows into the
catalog whenever no job holds it (data_catalog/absorb.py does the copying on every open)."""

from __future__ import annotations

import logging
import os
import time

from data_catalog.absorb import has_pending
from data_catalog.connection import CatalogBusyError, connect

logger = logging.getLogger(__name__)


def absorb_until_idle(catalog: str, parent_pid: int, every_s: float = 2.0,
                      idle_s: float = 20.0) -> None:
    """Every ``every_s``, absorb the journal if it has new rows and no job holds the catalog;
    stop when the parent (the dashboard) is gone or nothing was pending for ``idle_s``."""
    idle_since = time.monotonic()
    while os.getppid() == parent_pid and time.monotonic() - idle_since < idle_s:
        time.sleep(every_s)
        try:
            if not has_pending(catalog):
                continue
            idle_since = time.monotonic()
            with connect(catalog, wait_s=0.0):  # absorbs on open; a job holding it: later
                pass
        except CatalogBusyError:
            continue
        except Exception:  # the rows stay in the journal; try again next time
            logger.warning("journal absorber: %s not updated yet", catalog, exc_info=True)

