"""Files served to a component: a per-user temporary folder that Streamlit serves over HTTP
beside a component's own files, so that the browser fetches what is large or many (a series'
slabs, plane images) instead of its riding the websocket at every rerun. Entries are written
atomically and the least recently used are deleted."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import streamlit.components.v1 as components


def served_folder(kind: str) -> Path:
    """The owner-only folder of one kind of served files (``$TMPDIR/ctae-{kind}-{uid}``), created."""
    folder = Path(tempfile.gettempdir()) / f"ctae-{kind}-{os.getuid()}"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return folder


def serve(folder: Path, name: str) -> str:
    """Serve ``folder``'s files as the "frontend" of a component named ``name`` (Streamlit serves
    them at /component/<its name>/<file>, and the browser may cache them); returns their URL
    prefix relative to any component's frame."""
    return f"../{components.declare_component(name, path=str(folder)).name}/"


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``path`` so that a browser never reads half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def mark_used(entry: Path) -> bool:
    """Note that ``entry`` (a file or folder) was used now; False when it is not there."""
    try:
        os.utime(entry)
        return True
    except FileNotFoundError:
        return False


def keep_newest(folder: Path, pattern: str, keep: int, spare: str | None = None) -> None:
    """Delete all but the ``keep`` most recently used entries (files or folders) of ``folder``
    that match ``pattern``; the entry named ``spare`` (just written) is never deleted."""
    def used(entry: Path) -> float:
        try:
            return entry.stat().st_mtime
        except FileNotFoundError:  # deleted by another session meanwhile
            return 0.0

    for old in sorted(folder.glob(pattern), key=used, reverse=True)[keep:]:
        if old.name == spare:
            continue
        if old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink(missing_ok=True)
