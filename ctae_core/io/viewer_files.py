"""The files the browser viewer fetches: a volume as raw little-endian int16 in slabs of axial
slices (so the first slice can be drawn before the rest has arrived), previews of the whole
volume (every fourth, then every second voxel along each axis: every slice can be drawn once the
first is here), and small arrays whole.

Each file is gzip-framed at level 0 (stored blocks: as fast as a copy, inflated natively by the
browser's ``DecompressionStream``): Streamlit's server sends ``application/gzip`` as it is, but
would gzip any other type at level 9 on every request (seconds for a 157 MB series). Real
compression does not pay on a local link: see README, "The interactive viewer's parts".
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

SLAB_BYTES = 4_000_000
"""About how large one slab file is (8 slices of 512×512): small enough to arrive in tens of ms."""


def source_fingerprint(source_root: str, source_path: str, series_uid: str | None) -> str:
    """A hash of the series UID and every source file's name, size and mtime: it changes when
    the files do, without opening one."""
    path = Path(source_root) / source_path
    if not path.exists():
        raise FileNotFoundError(f"{path}: source not reachable from this machine")
    entries = [str(series_uid)]
    if path.is_file():
        stat = path.stat()
        entries.append(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}")
    else:
        for folder, _, names in sorted(os.walk(path)):
            for name in sorted(names):
                stat = os.stat(os.path.join(folder, name))
                entries.append(f"{folder}/{name}:{stat.st_size}:{stat.st_mtime_ns}")
    return hashlib.sha1("\n".join(entries).encode()).hexdigest()[:16]


def slab_slices(shape_zyx: tuple[int, ...]) -> int:
    """Axial slices per slab file for a volume of this shape."""
    _, ny, nx = shape_zyx
    return max(1, SLAB_BYTES // (2 * ny * nx))


def _gz(array: np.ndarray) -> bytes:
    return gzip.compress(np.ascontiguousarray(array).astype("<i2", copy=False).tobytes(),
                         compresslevel=0, mtime=0)


def write_slabs(folder: Path, hu_zyx: np.ndarray) -> list[str]:
    """Write (Z, Y, X) int16 voxels as ``slab-NNNN.gz`` files of :func:`slab_slices` slices each
    into ``folder`` (created); returns the file names in z order."""
    folder.mkdir(parents=True, exist_ok=True)
    step = slab_slices(hu_zyx.shape)
    names = [f"slab-{i:04d}.gz" for i in range(0, hu_zyx.shape[0], step)]

    def write(k: int) -> None:
        (folder / names[k]).write_bytes(_gz(hu_zyx[k * step:(k + 1) * step]))

    with ThreadPoolExecutor(4) as pool:  # crc32 and write release the GIL
        list(pool.map(write, range(len(names))))
    return names


PREVIEW_FACTORS = (4, 2)
"""The previews, coarsest first: every 4th voxel along each axis (1/64 of the bytes, 2.5 MB for
512×512×300: the first slice and every other one can be drawn once it is here), then every 2nd
(1/8, 20 MB)."""


def write_previews(folder: Path, hu_zyx: np.ndarray) -> list[dict]:
    """Write the previews of a volume of more than one slab into ``folder``, coarsest first;
    returns each one's file name, factor and shape (Z, Y, X) for the browser (none when one slab
    holds the volume)."""
    if hu_zyx.shape[0] <= slab_slices(hu_zyx.shape):
        return []
    previews = []
    for step in PREVIEW_FACTORS:
        preview = hu_zyx[::step, ::step, ::step]  # voxels as they are, not averaged: true HU
        name = f"preview-{step}.gz"
        (folder / name).write_bytes(_gz(preview))
        previews.append({"file": name, "factor": step, "shape_zyx": list(preview.shape)})
    return previews


def write_array(path: Path, array_zyx: np.ndarray) -> None:
    """Write one small (Z, Y, X) array as int16 (rounded) in a level-0 gzip frame."""
    values = np.asarray(array_zyx)
    if values.dtype != np.int16:
        values = np.clip(np.rint(values.astype(np.float32)), -32768, 32767).astype(np.int16)
    path.write_bytes(_gz(values))


def replace_folder(tmp: Path, final: Path) -> None:
    """Move a fully written folder into place (a reader never sees half a scan)."""
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
