"""Hand out a review session's scans: each scan to ``reads`` distinct reviewers, loads balanced,
every reviewer's queue in its own shuffled order."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def assign_reads(
    scan_ids: Sequence[str], reviewers: Sequence[str], reads: int, seed: int = 0
) -> dict[str, list[str]]:
    """Reviewer → their shuffled queue; a scan read ``reads`` times goes to that many reviewers.

    Raises:
        ValueError: fewer distinct reviewers than reads per scan, or reads < 1.
    """
    reviewers = list(dict.fromkeys(reviewers))
    if reads < 1:
        raise ValueError(f"reads per scan must be at least 1, not {reads}")
    if len(reviewers) < reads:
        raise ValueError(
            f"{reads} reads per scan need at least {reads} reviewers, not {len(reviewers)}"
        )
    rng = np.random.default_rng(seed)
    load = np.zeros(len(reviewers))
    queues: dict[str, list[str]] = {r: [] for r in reviewers}
    for scan in dict.fromkeys(scan_ids):
        # least-loaded first, ties broken at random, so loads differ by at most one
        order = np.lexsort((rng.random(len(reviewers)), load))[:reads]
        for k in order:
            queues[reviewers[k]].append(scan)
            load[k] += 1
    for queue in queues.values():
        rng.shuffle(queue)
    return queues
