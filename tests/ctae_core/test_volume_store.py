"""The volume store's writes: atomic, and a failed one (a full disk) leaves nothing behind and
says where, how much room is left and what to do."""

from __future__ import annotations

import errno
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ctae_core.io import volume_store
from ctae_core.io.volume_store import StoreWriteError, load_volume, save_volume


def _full_disk_after(n_bytes: int, code: int | None):
    """np.save that writes ``n_bytes`` and then fails as a full disk does (numpy's own short
    write carries no errno)."""

    def save(handle, array, allow_pickle=False):
        handle.write(b"\x93NUMPY" + b"\0" * (n_bytes - 6))
        handle.flush()
        if code is None:
            raise OSError(f"{array.nbytes} requested and {n_bytes} written")
        raise OSError(code, "No space left on device")

    return save


@pytest.mark.parametrize("code", [None, errno.ENOSPC])
def test_a_write_that_runs_out_of_room_leaves_no_part_and_keeps_the_old_file(tmp_path, monkeypatch, code):
    path = tmp_path / "store" / "volumes" / "scan.npy"
    old = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    save_volume(old, path)
    monkeypatch.setattr(volume_store.np, "save", _full_disk_after(4096, code))
    with pytest.raises(StoreWriteError) as failed:
        save_volume(np.zeros((64, 64, 64), dtype=np.int16), path)
    message = str(failed.value)
    assert message.startswith(f"{path}: could not be written (")
    assert "MB free on its disk" in message and "--store" in message and "is kept" in message
    assert failed.value.errno == code
    assert sorted(p.name for p in path.parent.iterdir()) == ["scan.npy"]  # no temp file left
    assert np.array_equal(load_volume(path), old)  # the file it was to replace is whole


def test_a_write_stopped_by_ctrl_c_leaves_no_part_and_keeps_the_old_file(tmp_path, monkeypatch):
    # until stop 56 the part file stayed beside the volume (or checkpoint, or export)
    path = tmp_path / "store" / "volumes" / "scan.npy"
    old = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    save_volume(old, path)

    def interrupted(handle, array, allow_pickle=False):
        handle.write(b"\x93NUMPY" + b"\0" * 4090)
        raise KeyboardInterrupt

    monkeypatch.setattr(volume_store.np, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_volume(np.zeros((64, 64, 64), dtype=np.int16), path)
    assert sorted(p.name for p in path.parent.iterdir()) == ["scan.npy"]
    assert np.array_equal(load_volume(path), old)


CHECKPOINT_UNDER_A_SIZE_LIMIT = """
import resource, signal, sys
import torch
from ctae_core.io.checkpoint import load_checkpoint, save_checkpoint
from ctae_core.io.volume_store import StoreWriteError

path = sys.argv[1]
save_checkpoint({"weights": torch.ones(1000)}, path)  # the previous epoch's, 4 kB
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))
try:
    save_checkpoint({"weights": torch.ones(1_000_000)}, path)  # 4 MB
except StoreWriteError as err:
    print(err.errno, err)
print(int(load_checkpoint(path)["weights"].numel()))
"""


def test_a_checkpoint_that_runs_out_of_room_leaves_no_part_and_keeps_the_last_one(tmp_path):
    # the real torch writer, stopped by a file size limit: it reports the failed write as
    # "RuntimeError: [enforce fail at inline_container.cc] unexpected pos" (no word of the disk)
    path = tmp_path / "runs" / "r" / "checkpoint.pt"
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", CHECKPOINT_UNDER_A_SIZE_LIMIT, str(path)],
                          capture_output=True, text=True, cwd=root, timeout=120)
    assert done.returncode == 0, done.stderr
    said, kept = done.stdout.strip().splitlines()
    assert said.startswith(f"{errno.EFBIG} {path}: could not be written (File too large); ")
    assert "MB free on its disk" in said and "what it wrote before is kept" in said
    assert kept == "1000"  # the last good checkpoint is whole
    assert sorted(p.name for p in path.parent.iterdir()) == ["checkpoint.pt"]  # no temp file


def test_a_damaged_volume_is_told_apart_from_a_whole_one_and_named(tmp_path):
    path = save_volume(np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6), tmp_path / "a.npy")
    assert volume_store.volume_intact(path)
    whole = path.read_bytes()
    for damaged in (whole[:-2], whole + b"\0", whole[:60], b"", b"not an array at all" * 10):
        path.write_bytes(damaged)
        assert not volume_store.volume_intact(path)
    path.write_bytes(whole[:-2])  # a write cut short: numpy's own words named no file
    with pytest.raises(volume_store.CorruptVolumeError, match=f"{path}: stored volume is truncated"):
        load_volume(path)
    assert not volume_store.volume_intact(tmp_path / "missing.npy")
