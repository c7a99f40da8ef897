"""The volume store: one ``.npy`` per array, memory-mapped on read. The only module that knows
the on-disk format of stored volumes."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def save_volume(array: np.ndarray, path: Path | str) -> Path:
    """Write ``array`` to ``path`` atomically (temp file + rename): a kill never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as handle:
        np.save(handle, np.ascontiguousarray(array), allow_pickle=False)
    os.replace(tmp, path)
    return path


def load_volume(path: Path | str, *, mmap: bool = True) -> np.ndarray:
    """Read a stored array; memory-mapped by default, so a slice reads a few KB, not the scan."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"{path}: stored volume is missing; re-run the job that wrote it (ingest or score)"
        )
    return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
