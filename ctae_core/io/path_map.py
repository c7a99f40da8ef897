"""The owner-only file that links pseudonymous ids back to source paths under
``--redact-paths``: the catalog then holds no folder or file name, and exports that need the
paths read them from here (only the user who ingested can).
"""

from __future__ import annotations

import csv
import fcntl
import io
import os
from collections.abc import Iterable
from dataclasses import astuple, dataclass, fields
from pathlib import Path

OWNER_ONLY = 0o600


@dataclass(frozen=True)
class PathLink:
    """One pseudonymous id (a scan id, or a refused file's id) and the source it stands for."""

    id: str
    source_root: str
    source_path: str


_COLUMNS = [f.name for f in fields(PathLink)]


def path_map_file(store_dir: Path | str) -> Path:
    """Where the mapping of a store lives: beside it, ``<store>.source-paths.csv``."""
    store = Path(store_dir)
    return store.with_name(f"{store.name}.source-paths.csv")


def path_map_lock(path: Path | str) -> Path:
    """The lock beside a path map (``<map>.lock``) that its read-and-write holds."""
    path = Path(path)
    return path.with_name(path.name + ".lock")


def read_path_map(path: Path | str) -> dict[str, PathLink]:
    """The links in ``path`` by id ({} when the file does not exist).

    Raises:
        PermissionError: the file belongs to another user (ask them for the paths).
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    return {row["id"]: PathLink(**row) for row in csv.DictReader(io.StringIO(text))}


def add_path_links(path: Path | str, links: Iterable[PathLink], drop: Iterable[str] = ()) -> int:
    """Merge ``links`` into the mapping file, and take out the links of the ids in ``drop``
    (scans removed from the catalog), written atomically and readable by its owner only;
    returns how many links it holds. The read and the write hold a lock beside the file
    (``<map>.lock``): until stop 57 four `ctae ingest --redact-paths` at once into one store
    lost one's links (one round in six), and with them the only way back to its scans' files."""
    links, drop = list(links), set(drop)
    path = Path(path)
    if drop and not links and not path.exists():
        return 0  # nothing to take out of a map that was never written
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path_map_lock(path), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                 OWNER_ONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        return _merge(path, links, drop)
    finally:
        os.close(fd)  # and with it the lock


def _merge(path: Path, links: list[PathLink], drop: set[str]) -> int:
    merged = read_path_map(path)
    if not links and not drop.intersection(merged) and path.exists():
        return len(merged)
    merged.update((link.id, link) for link in links)
    for scan_id in drop:
        merged.pop(scan_id, None)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(_COLUMNS)
    writer.writerows(astuple(link) for link in sorted(merged.values(), key=lambda k: k.id))
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, OWNER_ONLY)
    try:
        os.fchmod(fd, OWNER_ONLY)  # the umask never widens it; an old file's mode is replaced
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(buffer.getvalue())
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)
    return len(merged)
