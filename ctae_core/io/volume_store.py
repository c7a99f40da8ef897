"""The volume store: one ``.npy`` per array, memory-mapped on read. The only module that knows
the on-disk format of stored volumes."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import numpy as np

SUFFIX = ".npy"
RUN_VOLUME_KINDS = ("recon", "error")
"""A run's per-scan arrays: its reconstruction and |error| in HU."""


def scan_volume_path(store_dir: Path | str, scan_id: str) -> Path:
    """Where an ingested scan's int16 HU array is stored: ``<store>/volumes/<scan_id>.npy``."""
    return Path(store_dir) / "volumes" / f"{scan_id}{SUFFIX}"


def run_volume_path(run_dir: Path | str, kind: str, scan_id: str) -> Path:
    """Where a run's ``kind`` (recon | error) array of a scan is stored:
    ``<run_dir>/<kind>/<scan_id>.npy``."""
    if kind not in RUN_VOLUME_KINDS:
        raise ValueError(f"run volume kind must be one of {RUN_VOLUME_KINDS}, not {kind!r}")
    return Path(run_dir) / kind / f"{scan_id}{SUFFIX}"


class StoreWriteError(OSError):
    """A stored array could not be written (a full disk, a quota, a read-only store); the message
    names the file, the space left on its disk and what to do."""

    def __str__(self) -> str:
        return self.strerror or super().__str__()


def save_volume(array: np.ndarray, path: Path | str) -> Path:
    """Write ``array`` to ``path`` atomically (temp file + rename): a kill never leaves half a
    file, and a failed write leaves no temp file behind (a full disk's partial file would keep
    every later, smaller write from fitting).

    Raises:
        StoreWriteError: the write failed (its ``errno`` where the system gave one).
    """
    # numpy's short write ("N requested and M written") is an OSError without an errno
    return write_atomic(Path(path), lambda handle: np.save(
        handle, np.ascontiguousarray(array), allow_pickle=False))


def write_atomic(path: Path, write: Callable[[BinaryIO], object], *, fsync: bool = False) -> Path:
    """``write(handle)`` into a part file beside ``path`` (``fsync``: flushed to disk), then
    renamed into place: a kill never leaves half a file, a failed write (an ``OSError``)
    removes its part and raises ``StoreWriteError`` (``write_failed``), and an interrupted one
    (Ctrl+C) removes its part too.

    The one atomic write of the store's files: volumes here, checkpoints in
    ``ctae_core.io.checkpoint``."""
    tmp = _part_path(path, os.getpid())
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as handle:
            write(handle)
            if fsync:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as err:
        with contextlib.suppress(OSError):  # a folder that could not be made holds none
            tmp.unlink(missing_ok=True)
        raise write_failed(path, err) from err
    except BaseException:  # Ctrl+C mid-write: left its part beside the file until stop 56
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise
    return path


NO_ROOM = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, None})
"""A write's errors that mean the disk (or a quota, or a file size limit) has no room; None:
numpy's short write, which carries no errno."""


def write_failed(path: Path, err: OSError) -> StoreWriteError:
    """The ``StoreWriteError`` for a failed write of ``path`` (its part file already removed)."""
    if err.errno in NO_ROOM:
        advice = (f"{_free_mb(path.parent)} MB free on its disk — free space, or use a store on "
                  "a larger disk (--store)")
    else:
        advice = "check that the store's folders are folders this user may write (--store)"
    return StoreWriteError(err.errno, f"{path}: could not be written ({err.strerror or err}); "
                                      f"{advice}, then run the job again: what it wrote before "
                                      "is kept")


def _part_path(path: Path, pid: int) -> Path:
    """Where process ``pid`` writes ``path`` before renaming it into place."""
    return path.with_name(f".{path.name}.{pid}.tmp")


def parts_in(folder: Path | str) -> dict[Path, int]:
    """The unfinished writes in ``folder``: each part file and the pid of the process writing
    it (a live writer's part is on its way; a dead one's will never be renamed)."""
    found = {}
    for part in Path(folder).glob(".*.tmp"):
        pid = part.name.removesuffix(".tmp").rpartition(".")[2]
        if pid.isdigit():
            found[part] = int(pid)
    return found


def _free_mb(folder: Path) -> str:
    for candidate in (folder, *folder.parents):
        try:
            return f"{shutil.disk_usage(candidate).free / 2**20:.0f}"
        except OSError:
            continue
    return "?"


class CorruptVolumeError(ValueError):
    """A stored volume that is truncated or not an array ctae wrote."""


VOLUME_UNREADABLE = (FileNotFoundError, CorruptVolumeError)
"""What ``load_volume`` raises for a stored volume that cannot be shown: missing or damaged."""


def load_volume(path: Path | str, *, mmap: bool = True) -> np.ndarray:
    """Read a stored array; memory-mapped by default, so a slice reads a few KB, not the scan.

    Raises:
        FileNotFoundError: the file is missing.
        CorruptVolumeError: the file is truncated or not an array ctae wrote.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"{path}: stored volume is missing; re-run the job that wrote it (ingest or score)"
        )
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (ValueError, EOFError) as err:  # numpy: a short file, a bad header, a pickle
        raise CorruptVolumeError(
            f"{path}: stored volume is truncated or not one ctae wrote ({err}); re-run the job "
            "that wrote it (`ctae ingest` reads a damaged scan's source again, `ctae score "
            "--overwrite` rewrites a run's volumes)"
        ) from err


def volume_intact(path: Path | str) -> bool:
    """Whether ``path`` is a whole ``.npy`` array: its header reads and the file is as long as
    the header says (a write cut short, a disk error or a stray file is not); reads ~128 bytes."""
    try:
        with open(path, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, _, dtype = read_header(handle)
            expected = handle.tell() + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            return not dtype.hasobject and os.fstat(handle.fileno()).st_size == expected
    except (OSError, ValueError, EOFError):
        return False
