"""The files served to a component (viewer slabs, review planes): atomic writes, last-used pruning."""

from __future__ import annotations

import os

from dashboard import component_files


def test_the_least_recently_used_entries_go_files_and_folders_alike(tmp_path):
    for i in range(5):
        component_files.write_atomically(tmp_path / f"p{i}.png", bytes([i]) * 10)
        (tmp_path / f"n-{i}").mkdir()
        (tmp_path / f"n-{i}" / "meta.json").write_text("{}")
        for entry in (tmp_path / f"p{i}.png", tmp_path / f"n-{i}"):
            os.utime(entry, (1_000_000 + i, 1_000_000 + i))  # p4 / n-4 the newest
    assert not list(tmp_path.glob(".*"))  # no temporary file left behind
    assert component_files.mark_used(tmp_path / "p0.png")  # used now: the newest
    assert not component_files.mark_used(tmp_path / "gone.png")

    component_files.keep_newest(tmp_path, "*.png", 2)
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["p0.png", "p4.png"]
    assert (tmp_path / "p0.png").read_bytes() == bytes([0]) * 10

    component_files.keep_newest(tmp_path, "n-*", 1, spare="n-0")  # n-0: just written, kept
    assert sorted(p.name for p in tmp_path.glob("n-*")) == ["n-0", "n-4"]
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["p0.png", "p4.png"]  # not matched
