"""Find ingestible inputs under a folder: DICOM series (grouped by SeriesInstanceUID) and
NIfTI / MHA / NRRD volume files.

Discovery reads only file headers (``dicom_header``). It never opens anything but a regular
file (FIFOs, sockets, devices, broken links and symlink loops are refused without blocking),
passes over DICOMDIR / directory objects and files that are not DICOM, lists every other file
or folder it cannot use as a ``RefusedInput`` with a reason, and describes each input as a
picklable ``SeriesSource`` that a worker process can read.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import stat
import warnings
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import BinaryIO

import pydicom
import pydicom.config

from ctae_core.io.dicom_header import SLICE_TAGS, HeaderRefusal, SliceHeader, read_slice_header

__all__ = [
    "SLICE_TAGS", "Discovery", "Folder", "RefusedInput", "ScanFacts", "SeriesSource",
    "SliceHeader", "as_ingested_before", "discover_folder", "discover_sources", "distinct_roots",
    "fingerprint_files", "list_folders", "merge_folders", "open_regular", "quiet_pydicom",
    "refused_beside", "volume_kind",
]  # fmt: skip

logger = logging.getLogger(__name__)

VOLUME_SUFFIXES = {
    ".nii": "nifti",
    ".nii.gz": "nifti",
    ".mha": "mha",
    ".mhd": "mha",
    ".nrrd": "nrrd",
    ".nhdr": "nrrd",
}
DICOM_SUFFIXES = (".dcm", ".dicom", ".ima")
"""Names that promise DICOM: such a file that is not DICOM is listed, not just counted."""
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tgz", ".tar.gz", ".tar.bz2", ".tar.xz", ".gz", ".bz2", ".xz",
                    ".7z", ".rar")
"""Archives: ctae reads the files of folders, not inside archives, so such a file is listed
(``archive``) with what to do instead of being counted as one more file that is not DICOM
(``.nii.gz`` is a volume, known before this is asked)."""
PASSED_OVER = ("not_dicom", "dicom_directory")
"""Reasons a file is only counted: the notes, thumbnails and directory objects of a folder."""
_FILE_KINDS = {
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFDIR: "a folder",
}


class NotARegularFile(OSError):
    """A path that is a FIFO, socket, device or folder where a file was expected."""


@dataclass(frozen=True)
class RefusedInput:
    """A file or folder under a root that discovery cannot use, and why.

    Attributes:
        source_root: The folder given on the command line, absolute.
        source_path: The file or folder, relative to ``source_root``.
        reason: ``not_a_regular_file``, ``broken_link``, ``symlink_loop``, ``unreadable``,
            ``unreadable_folder``, ``empty_file``, ``not_dicom``, ``not_an_image`` or
            ``archive``.
        detail: What was found, in words (``a FIFO (named pipe)``, ``permission denied``).
    """

    source_root: str
    source_path: str
    reason: str
    detail: str

    @property
    def source_key(self) -> str:
        """Stable hash of root and path: the identity of this refusal across runs."""
        text = "\x1f".join([self.source_root, self.source_path, ""])
        return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class SeriesSource:
    """One input to ingest: a DICOM series or a volume file.

    Attributes:
        kind: ``dicom``, ``nifti``, ``mha`` or ``nrrd``.
        source_root: The folder given on the command line, absolute.
        source_path: Series folder (DICOM) or file, relative to ``source_root``.
        series_uid: SeriesInstanceUID, or None (volume files, DICOM with an empty UID).
        files: Absolute paths of the files that make up the input.
        headers: For DICOM, each file's header in ``files`` order (empty when not read).
        fingerprint: Hash of the files' names, sizes and modification times.
        group_key: What grouped the files (the UID, or the fallback key when it is empty).
        refused_beside: Files refused by discovery in the folders of a DICOM series (a slice
            that cannot be read leaves a gap whose reason is listed in ingest_errors).
        scan_id: The catalog's id of this input where it is not the one its key hashes to:
            the input moved since it was ingested (``ctae_core.io.moved_inputs``).
    """

    kind: str
    source_root: str
    source_path: str
    series_uid: str | None
    files: tuple[str, ...]
    fingerprint: str
    group_key: str = ""
    headers: tuple[SliceHeader, ...] = field(default=(), compare=False, repr=False)
    refused_beside: int = field(default=0, compare=False)
    scan_id: str | None = field(default=None, compare=False)

    @property
    def source_key(self) -> str:
        """Stable hash of root, path and series: the identity of this input across runs."""
        text = "\x1f".join([self.source_root, self.source_path, self.group_key])
        return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class ScanFacts:
    """What reading an input learned besides the voxels: device and geometry facts, repairs.

    No patient facts: this object is stored in the catalog.
    """

    manufacturer: str | None = None
    model: str | None = None
    kernel: str | None = None
    slice_thickness_mm: float | None = None
    orig_size_zyx: tuple[int, int, int] = (0, 0, 0)
    orig_spacing_zyx_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    orig_direction: tuple[float, ...] = ()
    gantry_tilt_deg: float = 0.0
    missing_slices: int = 0
    duplicate_slices: int = 0
    reversed_slices: bool = False
    warnings: tuple[str, ...] = field(default_factory=tuple)


@dataclass
class Discovery:
    """The inputs found under the roots, the files and folders refused (each with a reason),
    and counts of the files passed over (``PASSED_OVER``)."""

    sources: list[SeriesSource] = field(default_factory=list)
    refused: list[RefusedInput] = field(default_factory=list)
    skipped_files: dict[str, int] = field(default_factory=lambda: defaultdict(int))


def discover_sources(
    roots: list[Path],
    on_file: Callable[[int], object] | None = None,
    leave_out: Collection[str] = (),
) -> Discovery:
    """Walk each root recursively and group its files into ingestible inputs; ``on_file(1)``
    is called for every file looked at (a progress bar's ``update``). Files and folders whose
    real path is in ``leave_out`` (a catalog's own files and store) are not walked.

    Raises:
        FileNotFoundError: a root does not exist.
    """
    found = Discovery()
    with quiet_pydicom():  # header values are judged by the reader, not logged here
        for root in roots:
            _discover_root(Path(os.path.abspath(root)), found, on_file, frozenset(leave_out))
    found.sources.sort(key=lambda s: (s.source_root, s.source_path, s.group_key))
    found.refused.sort(key=lambda r: (r.source_root, r.source_path))
    return found


def missing_source(root: Path | str) -> FileNotFoundError:
    """The error for a source path that does not exist, in the words every caller uses."""
    return FileNotFoundError(f"{root}: source folder does not exist; check the path")


def distinct_roots(roots: Iterable[Path | str]) -> list[Path]:
    """``roots`` (absolute) without one given twice or lying inside another given root: its
    files would be found twice, as two inputs of one series (``ctae ingest data data/ct``
    ended in the catalog's duplicate-key error, nothing ingested). Order is kept; what is left
    out is logged, as it was given."""
    typed = [str(root) for root in roots]
    real = [Path(os.path.realpath(root)) for root in typed]
    kept: list[Path] = []
    for i, where in enumerate(real):
        outer = next((j for j, other in enumerate(real) if j != i and (
            (other == where and j < i) or other in where.parents)), None)
        if outer is None:
            kept.append(Path(os.path.abspath(typed[i])))
        else:
            logger.warning("source %s is %s %s, given too: its files are read once, as part of "
                           "it", typed[i], "the same as" if real[outer] == where else "inside",
                           typed[outer])
    return kept


def as_ingested_before(
    source: SeriesSource, roots: Iterable[str], known: Callable[[SeriesSource], bool]
) -> SeriesSource:
    """``source`` under the folder it was first ingested from, where that is another of the
    catalog's source folders (``roots``) and ``known`` says the input is stored under it:
    ``ctae ingest /data/ct`` after ``ctae ingest /data/ct/batch1`` finds batch1's series again,
    each under a new root and so a new id, and they would be cohort members twice. Otherwise
    ``source`` itself."""
    if known(source):
        return source
    where = os.path.join(source.source_root, source.source_path)
    for root in roots:
        if root == source.source_root or not os.path.isabs(root):  # a pseudonym is no folder
            continue
        inside = os.path.relpath(where, root)
        if inside == os.pardir or inside.startswith(os.pardir + os.sep) or os.path.isabs(inside):
            continue
        volume = source.kind != "dicom"  # a volume file's key is its path, a series' its UID
        before = replace(source, source_root=root, source_path=inside,
                         group_key=inside if volume else source.group_key)
        if known(before):
            files = [Path(f) for f in source.files]
            return replace(before, fingerprint=fingerprint_files(files, Path(root)))
    return source


def _discover_root(root: Path, found: Discovery, on_file: Callable[[int], object] | None,
                   leave_out: frozenset[str]) -> None:
    if not os.path.lexists(root):
        raise missing_source(root)
    if not root.is_dir():
        _discover_file_root(root, found)
        return
    root = root.resolve()
    _discover_files(root, _walk_files(root, found, leave_out), found, on_file)


def _discover_files(
    root: Path,
    paths: Iterable[Path],
    found: Discovery,
    on_file: Callable[[int], object] | None = None,
) -> None:
    """Add the inputs among ``paths`` (files under ``root``) to ``found``."""
    groups: dict[str, list[tuple[Path, SliceHeader]]] = defaultdict(list)
    for path in paths:
        if on_file is not None:
            on_file(1)
        kind = volume_kind(path)
        problem = _file_problem(path, sniff=kind is not None)
        if problem is not None:
            found.refused.append(RefusedInput(str(root), _relative(path, root), *problem))
            continue
        if kind is not None:
            found.sources.append(_volume_source(root, path, kind))
            continue
        header = _read_header(path)
        if isinstance(header, HeaderRefusal):
            _refuse_header(root, path, header, found)
            continue
        groups[_group_key(path, header)].append((path, header))
    refused_in = _refused_per_folder(found.refused, root)
    for key, members in groups.items():
        source = _dicom_source(root, key, members)
        beside = refused_beside(source, refused_in)
        found.sources.append(replace(source, refused_beside=beside) if beside else source)


def _refused_per_folder(refused: Iterable[RefusedInput], root: Path | str) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for entry in refused:
        if entry.source_root == str(root):
            counts[os.path.dirname(entry.source_path) or "."] += 1
    return counts


def refused_beside(source: SeriesSource, refused_in: dict[str, int]) -> int:
    """Refused files and folders in the folders of a DICOM series' files (``refused_in``:
    counts per folder relative to the series' root)."""
    if not refused_in:  # the usual case: no relative path to work out for every file
        return 0
    root = source.source_root
    folders = {os.path.dirname(os.path.relpath(f, root)) or "." for f in source.files}
    return sum(refused_in.get(folder, 0) for folder in folders)


@dataclass(frozen=True)
class Folder:
    """The files directly in one folder under a root: a unit discovery can run on alone."""

    root: str
    files: tuple[str, ...]


def list_folders(
    roots: list[Path], leave_out: Collection[str] = ()
) -> tuple[list[Folder], list[RefusedInput]] | None:
    """The folders holding files under ``roots`` (each a ``Folder``, in walking order) and the
    folders that could not be read; None when a root is a file. ``leave_out`` as for
    ``discover_sources``.

    ``discover_folder`` on each, then ``merge_folders``, finds what ``discover_sources`` finds
    where no series has files in two folders.

    Raises:
        FileNotFoundError: a root does not exist.
    """
    folders: list[Folder] = []
    found = Discovery()
    for given in roots:
        root = Path(os.path.abspath(given))
        if not os.path.lexists(root):
            raise missing_source(root)
        if not root.is_dir():
            return None
        root = root.resolve()
        by_folder: dict[str, list[str]] = {}
        for path in _walk_files(root, found, frozenset(leave_out)):
            by_folder.setdefault(str(path.parent), []).append(str(path))
        folders += [Folder(str(root), tuple(files)) for files in by_folder.values()]
    return folders, found.refused


def discover_folder(folder: Folder) -> Discovery:
    """The inputs among one folder's files, found as ``discover_sources`` finds them."""
    found = Discovery()
    with quiet_pydicom():
        _discover_files(Path(folder.root), map(Path, folder.files), found)
    return found


def merge_folders(
    parts: list[Discovery], refused_folders: list[RefusedInput]
) -> tuple[Discovery, bool]:
    """One ``Discovery`` of the parts ``discover_folder`` found, ordered as ``discover_sources``
    orders it, and whether it is what ``discover_sources`` finds: False where a series has
    files in two folders (each part holds a piece of it) or lost a refused folder beside it."""
    found = Discovery(refused=list(refused_folders))
    for part in parts:
        found.sources += part.sources
        found.refused += part.refused
        for reason, n in part.skipped_files.items():
            found.skipped_files[reason] += n
    found.sources.sort(key=lambda s: (s.source_root, s.source_path, s.group_key))
    found.refused.sort(key=lambda r: (r.source_root, r.source_path))
    series = [s for s in found.sources if s.kind == "dicom"]
    pieces = defaultdict(int)
    for source in series:
        pieces[(source.source_root, source.group_key)] += 1
    refused_in = {
        root: _refused_per_folder(found.refused, root) for root in {s.source_root for s in series}
    }
    whole = all(pieces[(s.source_root, s.group_key)] == 1 for s in series) and all(
        refused_beside(s, refused_in[s.source_root]) == s.refused_beside for s in series
    )
    return found, whole


def _discover_file_root(path: Path, found: Discovery) -> None:
    root = path.parent.resolve()
    path = root / path.name
    kind = volume_kind(path)
    problem = _file_problem(path, sniff=kind is not None)
    if problem is not None:
        found.refused.append(RefusedInput(str(root), path.name, *problem))
    elif kind is not None:
        found.sources.append(_volume_source(root, path, kind))
    else:
        header = _read_header(path)
        if isinstance(header, HeaderRefusal):
            _refuse_header(root, path, header, found)
        else:
            found.sources.append(_dicom_source(root, _group_key(path, header), [(path, header)]))


def _refuse_header(root: Path, path: Path, refusal: HeaderRefusal, found: Discovery) -> None:
    """List a file whose header is broken or that promises DICOM and is not; count the rest."""
    name = path.name.lower()
    if refusal.reason == "not_dicom" and name.endswith(ARCHIVE_SUFFIXES):
        archive = next(s for s in ARCHIVE_SUFFIXES if name.endswith(s))
        found.refused.append(RefusedInput(str(root), _relative(path, root), "archive", archive))
        return
    promised = name.endswith(DICOM_SUFFIXES)
    if refusal.reason in PASSED_OVER and not (refusal.reason == "not_dicom" and promised):
        found.skipped_files[refusal.reason] += 1
        return
    detail = refusal.detail or "no DICOM header (neither a preamble nor a DICOM tag at the start)"
    found.refused.append(RefusedInput(str(root), _relative(path, root), refusal.reason, detail))


def volume_kind(path: Path) -> str | None:
    """``nifti`` / ``mha`` / ``nrrd`` from the file name, or None for anything else."""
    name = path.name.lower()
    for suffix, kind in VOLUME_SUFFIXES.items():
        if name.endswith(suffix):
            return kind
    return None


def fingerprint_files(paths: list[Path], root: Path) -> str:
    """Hash of relative names, sizes and mtimes: changes when any file changes."""
    digest = hashlib.sha256()
    for path in sorted(paths):
        stat = path.stat()
        digest.update(f"{path.relative_to(root)}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


@contextmanager
def quiet_pydicom() -> Iterator[None]:
    """Read without pydicom's per-value validation warnings; the readers judge values."""
    previous = pydicom.config.settings.reading_validation_mode
    pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        pydicom.config.settings.reading_validation_mode = previous


def open_regular(path: Path | str) -> BinaryIO:
    """Open a regular file for reading; never opens (or blocks on) a FIFO, socket or device.

    Raises:
        NotARegularFile: the path is not a regular file.
        OSError: it cannot be opened (missing, permission denied, symlink loop).
    """
    kind = stat.S_IFMT(os.stat(path).st_mode)
    if kind != stat.S_IFREG:
        raise NotARegularFile(errno.EINVAL, _FILE_KINDS.get(kind, "a special file"), str(path))
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    kind = stat.S_IFMT(os.fstat(fd).st_mode)
    if kind != stat.S_IFREG:  # swapped for a special file since the check above
        os.close(fd)
        raise NotARegularFile(errno.EINVAL, _FILE_KINDS.get(kind, "a special file"), str(path))
    return os.fdopen(fd, "rb")


def _file_problem(path: Path, *, sniff: bool) -> tuple[str, str] | None:
    """(reason, detail) when ``path`` cannot be an input file, without ever opening a special
    file; with ``sniff`` the first byte is read too (volume files are not opened otherwise)."""
    try:
        info = os.stat(path)
    except OSError as err:
        if err.errno == errno.ELOOP:
            return "symlink_loop", "a symbolic link that leads back to itself"
        if err.errno in (errno.ENOENT, errno.ENOTDIR) and os.path.islink(path):
            return "broken_link", "a symbolic link to a file that does not exist"
        return _os_refusal(err)
    kind = stat.S_IFMT(info.st_mode)
    if kind != stat.S_IFREG:
        return "not_a_regular_file", _FILE_KINDS.get(kind, "a special file")
    if info.st_size == 0:
        return "empty_file", "0 bytes"
    if sniff:
        try:
            with open_regular(path) as handle:
                handle.read(1)
        except NotARegularFile as err:
            return "not_a_regular_file", err.strerror
        except OSError as err:
            return _os_refusal(err)
    return None


def _os_refusal(err: OSError) -> tuple[str, str]:
    if err.errno in (errno.EACCES, errno.EPERM):
        return "unreadable", "permission denied"
    return "unreadable", (err.strerror or type(err).__name__).lower()


def _walk_files(root: Path, found: Discovery, leave_out: frozenset[str] = frozenset()) -> Iterator[Path]:
    """The files under ``root`` in walking order, hidden ones and those of ``leave_out`` (real
    paths) left out; a folder that cannot be read is refused into ``found``."""
    def unreadable_folder(err: OSError) -> None:
        folder = Path(err.filename) if err.filename else root
        detail = _os_refusal(err)[1]
        found.refused.append(
            RefusedInput(str(root), _relative(folder, root), "unreadable_folder", detail)
        )

    names = {os.path.basename(p) for p in leave_out}

    def left_out(folder: str, name: str) -> bool:
        # the real path is only worked out for a name one of them has: a large tree's walk
        # costs no more
        return name in names and os.path.realpath(os.path.join(folder, name)) in leave_out

    for folder, dirnames, filenames in os.walk(root, onerror=unreadable_folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")
                             and not left_out(folder, d))
        for name in sorted(filenames):
            if not name.startswith(".") and not left_out(folder, name):
                yield Path(folder) / name


def _relative(path: Path, root: Path) -> str:
    relative = os.path.relpath(path, root)
    return "." if relative in ("", ".") else relative


def _read_header(path: Path) -> SliceHeader | HeaderRefusal:
    """The header of a DICOM image file, or why it is not one (opened as a regular file only)."""
    try:
        with open_regular(path) as handle:
            return read_slice_header(handle, path.name)
    except NotARegularFile as err:
        return HeaderRefusal("not_a_regular_file", err.strerror)
    except OSError as err:
        return HeaderRefusal(*_os_refusal(err))


def _group_key(path: Path, slice_header: SliceHeader) -> str:
    header = slice_header.dataset
    uid = str(header.get("SeriesInstanceUID", "") or "").strip()
    if uid:
        return uid
    fallback = [
        str(path.parent),
        str(header.get("StudyInstanceUID", "") or ""),
        str(header.get("SeriesNumber", "") or ""),
        str(header.get("Modality", "") or ""),
        f"{header.get('Rows', '')}x{header.get('Columns', '')}",
    ]
    return "nouid:" + hashlib.sha256("|".join(fallback).encode()).hexdigest()[:16]


def _dicom_source(root: Path, key: str, members: list[tuple[Path, SliceHeader]]) -> SeriesSource:
    members = sorted(members, key=lambda member: member[0])
    paths = [path for path, _ in members]
    folder = Path(os.path.commonpath([p.parent for p in paths]))
    return SeriesSource(
        kind="dicom",
        source_root=str(root),
        source_path=str(folder.relative_to(root)),
        series_uid=None if key.startswith("nouid:") else key,
        files=tuple(str(p) for p in paths),
        fingerprint=fingerprint_files(paths, root),
        group_key=key,
        headers=tuple(header for _, header in members),
    )


def _volume_source(root: Path, path: Path, kind: str) -> SeriesSource:
    relative = str(path.relative_to(root))
    return SeriesSource(
        kind=kind,
        source_root=str(root),
        source_path=relative,
        series_uid=None,
        files=(str(path),),
        fingerprint=fingerprint_files([path], root),
        group_key=relative,
    )
