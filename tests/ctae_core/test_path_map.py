"""The owner-only path map of `--redact-paths` (``ctae_core.io.path_map``)."""

from __future__ import annotations

import multiprocessing
import os
import stat
from pathlib import Path

from ctae_core.io.path_map import PathLink, add_path_links, path_map_file, read_path_map


def _add_after(barrier, path: str, worker: int) -> None:
    barrier.wait()  # every process reads and writes the map at the same moment
    add_path_links(Path(path), [PathLink(f"id{worker}-{i}", f"/data/a{worker}", f"s{i}")
                                for i in range(3)])


def test_links_added_at_once_by_several_ingests_are_all_kept(tmp_path):
    # until stop 57 four `ctae ingest --redact-paths` at once into one store lost one's links in
    # one round of six: each read the map before another had written it
    context = multiprocessing.get_context("fork")
    for round_ in range(4):
        path = path_map_file(tmp_path / f"round{round_}" / "store")
        barrier = context.Barrier(6)
        workers = [context.Process(target=_add_after, args=(barrier, str(path), w))
                   for w in range(6)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=60)
        assert [worker.exitcode for worker in workers] == [0] * 6
        links = read_path_map(path)
        assert sorted(links) == sorted(f"id{w}-{i}" for w in range(6) for i in range(3))
        assert links["id4-2"] == PathLink("id4-2", "/data/a4", "s2")
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert sorted(p.name for p in path.parent.iterdir()) == [
            "store.source-paths.csv", "store.source-paths.csv.lock"]  # no part left behind
