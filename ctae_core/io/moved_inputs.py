"""Where the catalog's inputs were found, and inputs found again after their folder moved.

A scan's id is a keyed hash of the folder it was ingested from, its path under that folder and
its series (``jobs.ingest_worker.scan_id_for``). An archive that moves (a disk mounted
elsewhere, a folder renamed or copied to a new server, its old place gone) would be found again
under new ids: every scan stored twice, the old rows naming files that no longer exist. So an
input that is not known under its own key is matched to a catalog scan whose files are no
longer where the catalog says and which is the same input: a DICOM series with the same
SeriesInstanceUID, wherever it now lies; a volume file (or DICOM without a UID) whose stored
path is the tail of its path, with the same names, sizes and modification times. It keeps
that scan's id (``SeriesSource.scan_id``) and its row takes the new place.
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import astuple, dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from ctae_core.io.path_map import path_map_file, read_path_map

if TYPE_CHECKING:  # sources brings pydicom (~0.25 s), which `ctae remove` does not need
    from ctae_core.io.sources import SeriesSource

__all__ = ["RemovedInputs", "StoredInput", "StoredPlaces", "at_mapped_places", "place_names",
           "unchanged_since"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredInput:
    """One catalog scan's identity and place: its id, kind, source folder, path under it,
    series UID and fingerprint as the catalog holds them."""

    scan_id: str
    kind: str
    source_root: str
    source_path: str
    series_uid: str | None
    fingerprint: str


def _parts(path: str) -> tuple[str, ...]:
    return tuple(part for part in Path(path).parts if part not in ("", "/"))


class StoredPlaces:
    """The catalog's source folders and its scans' places, to match an input found again.

    The indexes are built when an input is not known by its own id, so that a run over an
    unchanged archive builds none (100,000 scans: ~1 s).

    Args:
        stored: Every scan's ``StoredInput``, or the tuple of its fields (as the catalog gives
            them).
        exists: Whether a path exists (``os.path.exists``; a test may stand in).
    """

    def __init__(
        self,
        stored: Iterable[StoredInput | tuple] = (),
        exists: Callable[[str], bool] = os.path.exists,
    ) -> None:
        self._stored = [s if isinstance(s, tuple) else astuple(s) for s in stored]
        self._exists = exists

    @cached_property
    def roots(self) -> list[str]:
        """The distinct source folders of the catalog's scans, sorted."""
        return sorted({row[2] for row in self._stored})

    @cached_property
    def _ids(self) -> frozenset[str]:
        return frozenset(row[0] for row in self._stored)

    @cached_property
    def by_id(self) -> dict[str, StoredInput]:
        """Every scan's entry by its id."""
        return {row[0]: StoredInput(*row) for row in self._stored}

    @cached_property
    def _indexes(self) -> tuple[dict, dict, dict]:
        """Entries by place (folder, path, UID), by series UID and by file or folder name."""
        by_place: dict[tuple[str, str, str | None], list[StoredInput]] = defaultdict(list)
        by_uid: dict[str, list[StoredInput]] = defaultdict(list)
        by_name: dict[str, list[StoredInput]] = defaultdict(list)
        for entry in self.by_id.values():
            by_place[_place(entry.source_root, entry.source_path, entry.series_uid)].append(entry)
            if not os.path.isabs(entry.source_root):  # a pseudonym (--redact-paths): no place
                continue
            if entry.kind == "dicom" and entry.series_uid:
                by_uid[entry.series_uid].append(entry)
            else:
                by_name[Path(entry.source_path).name].append(entry)
        return by_place, by_uid, by_name

    def at_real_places(self, links: Mapping[str, tuple[str, str]]) -> StoredPlaces:
        """These places, with the source folder and path that ``links`` (scan id → folder,
        path) give where the catalog holds a pseudonym (``--redact-paths``: the owner-only
        path map), so that a redacted scan is known again under a wider folder or moved."""
        rows = [
            (row[0], row[1], *links[row[0]], *row[4:])
            if row[0] in links and not os.path.isabs(row[2]) else row
            for row in self._stored
        ]
        return StoredPlaces(rows, self._exists)

    def gone_under(self, folders: Iterable[str], found: set[str]) -> list[str]:
        """The ids of the scans stored under ``folders`` (absolute) that are not among ``found``
        and whose place is gone: deleted, or moved out of what was walked."""
        inside = tuple(os.path.join(folder, "") for folder in folders)
        gone = []
        for scan_id, _, root, path, *_ in self._stored:
            if scan_id in found or not os.path.isabs(root):
                continue
            place = os.path.join(root, path)
            if place.startswith(inside) and not self._exists(place):
                gone.append(scan_id)
        return gone

    def under(self, folders: Iterable[str]) -> list[str]:
        """The ids of the scans whose place (folder or file) is one of ``folders`` (absolute) or
        lies below one, whether or not it still exists."""
        inside = tuple(os.path.join(folder, "") for folder in folders)
        return [row[0] for row in self._stored if os.path.isabs(row[2])
                and os.path.join(row[2], row[3], "").startswith(inside)]

    def identify(self, source: SeriesSource, hashed_id: str) -> SeriesSource:
        """``source`` with the id the catalog stores for it (``scan_id``) where that is not
        ``hashed_id``, the id its key hashes to: it was stored at this place by an earlier
        move, or it is the moved input of a scan whose place is gone. Otherwise ``source``."""
        if hashed_id in self._ids:
            return source
        here = self._indexes[0].get(_place(source.source_root, source.source_path, source.series_uid))
        entry = here[0] if here and len(here) == 1 else self._moved_from(source)
        if entry is None or entry.scan_id == hashed_id:
            return source
        return replace(source, scan_id=entry.scan_id)

    def moved(self, source: SeriesSource) -> StoredInput | None:
        """The catalog's entry of ``source`` where ``identify`` matched it to a scan stored
        under another place, which this run moves it from; otherwise None."""
        entry = self.by_id.get(source.scan_id) if source.scan_id else None
        if entry is None or (entry.source_root, entry.source_path) == (source.source_root,
                                                                       source.source_path):
            return None
        return entry

    def _moved_from(self, source: SeriesSource) -> StoredInput | None:
        if source.kind == "dicom" and source.series_uid:
            candidates = self._indexes[1].get(source.series_uid, ())
        else:
            where = _parts(os.path.join(source.source_root, source.source_path))
            candidates = [entry for entry in self._indexes[2].get(where[-1] if where else "", ())
                          if entry.kind == source.kind and _is_tail(entry.source_path, where)
                          and unchanged_since(source, entry)]
        found = [entry for entry in candidates if not self._exists(
            os.path.join(entry.source_root, entry.source_path))]
        return found[0] if len(found) == 1 else None  # two candidates: neither is sure


@dataclass(frozen=True)
class RemovedInputs:
    """The inputs `ctae remove` took out of the catalog that ingest keeps out (named, below a
    folder, or a copy; not those whose files were gone, which a restored backup brings back): by
    scan id, and by place and series, so that one is known under a wider or narrower folder too;
    and a DICOM series whose removed place is gone by its SeriesInstanceUID wherever it now lies,
    as ``StoredPlaces`` finds a moved scan (an archive moved to a new server brought a patient
    removed for a withdrawn consent back under new ids until stop 59).

    Args:
        rows: (scan_id, source_root, source_path, series_uid) of each removed scan.
        exists: Whether a path exists (``os.path.exists``; a test may stand in).
    """

    ids: frozenset[str] = frozenset()
    places: frozenset[tuple[str, str | None]] = frozenset()
    by_uid: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    exists: Callable[[str], bool] = field(default=os.path.exists, compare=False)
    rows: tuple[tuple[str, str, str, str | None], ...] = field(default=(), compare=False)

    @classmethod
    def of(cls, rows: Iterable[tuple[str, str, str, str | None]],
           exists: Callable[[str], bool] = os.path.exists) -> RemovedInputs:
        rows = tuple(rows)
        by_uid: dict[str, list[str]] = defaultdict(list)
        for _, root, path, uid in rows:
            if uid and os.path.isabs(root):  # a pseudonym (--redact-paths) has no place to check
                by_uid[uid].append(os.path.join(root, path))
        return cls(frozenset(row[0] for row in rows),
                   frozenset(_input_place(root, path, uid) for _, root, path, uid in rows
                             if os.path.isabs(root)),
                   {uid: tuple(places) for uid, places in by_uid.items()}, exists, rows)

    def at_mapped_places(self, store_dir: Path | str) -> RemovedInputs:
        """These inputs with the real places of those removed from a ``--redact-paths`` catalog
        (where the catalog holds a pseudonym), from the store's path map — which `ctae remove`
        keeps for them — where this user may read it: so that they are known under a wider or
        narrower folder, or moved, too, and not by their ids alone."""
        if all(os.path.isabs(root) for _, root, _, _ in self.rows):
            return self
        links = _path_links(store_dir)
        return RemovedInputs.of(
            [(i, *links[i], uid) if i in links and not os.path.isabs(root) else (i, root, path, uid)
             for i, root, path, uid in self.rows], self.exists)

    def holds(self, source: SeriesSource, scan_id: str) -> bool:
        """Whether ``source`` (whose id is ``scan_id``, not a catalog scan's) is one of these
        inputs: at its removed place, or a DICOM series moved from a removed place now gone."""
        if scan_id in self.ids or _input_place(
                source.source_root, source.source_path, source.series_uid) in self.places:
            return True
        moved_from = self.by_uid.get(source.series_uid or "", ()) if source.kind == "dicom" else ()
        return any(not self.exists(place) for place in moved_from)


def place_names(paths: Iterable[Path | str]) -> list[str]:
    """``paths`` as a catalog may hold them: absolute as given, and with links resolved (a
    source folder is stored as it was given; a later command may name it either way)."""
    paths = list(paths)
    return sorted({os.path.abspath(p) for p in paths} | {os.path.realpath(p) for p in paths})


def _input_place(root: str, path: str, series_uid: str | None) -> tuple[str, str | None]:
    return os.path.normpath(os.path.join(root, path)), series_uid or None


def at_mapped_places(places: StoredPlaces, store_dir: Path | str) -> StoredPlaces:
    """``places`` with the real folders of the scans ingested with ``--redact-paths``, from the
    store's path map where this user may read it."""
    if all(os.path.isabs(root) for root in places.roots):
        return places
    links = _path_links(store_dir)
    return places.at_real_places(links) if links else places


def _path_links(store_dir: Path | str) -> dict[str, tuple[str, str]]:
    """The store's path map as scan id → (source folder, path); {} where this user may not read
    it (another user's map: their scans are known by their ids alone)."""
    try:
        links = read_path_map(path_map_file(store_dir))
    except OSError as err:
        logger.info("the path map cannot be read (%s): scans ingested with --redact-paths are "
                    "known only by their ids and the folder they were ingested from", err)
        return {}
    return {i: (k.source_root, k.source_path) for i, k in links.items()}


def _place(root: str, path: str, series_uid: str | None) -> tuple[str, str, str | None]:
    return root, os.path.normpath(path), series_uid or None


def _is_tail(stored_path: str, where: tuple[str, ...]) -> bool:
    """Whether ``stored_path`` is the end of ``where``, below at least one folder."""
    tail = _parts(stored_path)
    return 0 < len(tail) < len(where) and where[-len(tail):] == tail


def unchanged_since(source: SeriesSource, entry: StoredInput) -> bool:
    """Whether ``source``'s files have the names (under the folder that takes the place of the
    stored source folder), sizes and modification times ``entry`` was fingerprinted with: a
    moved input that was not changed, whose stored volume is still its own."""
    where = Path(source.source_root, source.source_path)
    depth = len(_parts(entry.source_path))
    root = where
    for _ in range(depth):
        root = root.parent
    from ctae_core.io.sources import fingerprint_files

    try:
        return fingerprint_files([Path(f) for f in source.files], root) == entry.fingerprint
    except (OSError, ValueError):
        return False
