"""The per-series ingest step that runs in a worker process: read → HU → resample → stats →
store. It never opens the catalog; it returns a picklable ``IngestOutcome`` that the parent
writes in batches (and that a Ray or Dask map can return just the same).

Each input is time-boxed, and its messages name it by its path relative to the source root
(or, with ``redact``, by its pseudonymous scan id), never by an absolute path.
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import os
import signal
import stat
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ctae_core.errors import InvalidSeriesError
from ctae_core.io.dicom_header import DAMAGED_VALUE_ERRORS
from ctae_core.io.sources import RefusedInput, ScanFacts, SeriesSource
from ctae_core.io.volume_files import silence_itk_warnings
from ctae_core.io.volume_store import StoreWriteError, save_volume, scan_volume_path
from ctae_core.native_metal import NativeDensity, native_density
from ctae_core.noise import native_noise_estimate
from ctae_core.stats import scan_statistics
from data_catalog.scans import IngestErrorRecord, ScanRecord
from jobs.ingest_limits import INPUT_TIMEOUT_S

logger = logging.getLogger(__name__)

SCAN_ID_SALT = b"ctae-scan-id-v1"
"""Key of the pseudonymous scan id: a keyed hash of the source key, never the UID itself."""
REDACTED_ROOT = "redacted:"
"""Prefix of ``source_root`` under ``--redact-paths``: a keyed hash of the root follows."""
HARD_KILL_GRACE_S = 15.0
"""How long a pool worker waits after the time box for code that ignores it (C loops)."""
HARD_KILL_EXIT = 75


class InputTimeout(BaseException):
    """An input ran past its time box (a BaseException: ``except Exception`` must not eat it)."""


@dataclass(frozen=True)
class IngestOutcome:
    """What ingesting one input produced: a scan row or an error row (exactly one is set)."""

    source: SeriesSource
    scan: ScanRecord | None = None
    error: IngestErrorRecord | None = None
    seconds: float = 0.0
    input_bytes: int = 0


def scan_id_for(source: SeriesSource) -> str:
    """Pseudonymous, stable id of an input: keyed BLAKE2b of its source key, 20 hex digits, or
    the id the catalog keeps for it since it moved (``SeriesSource.scan_id``)."""
    if source.scan_id is not None:
        return source.scan_id
    digest = hashlib.blake2b(source.source_key.encode(), key=SCAN_ID_SALT, digest_size=10)
    return digest.hexdigest()


def ingest_one(
    source: SeriesSource,
    store_dir: Path | str,
    spacing: float,
    *,
    timeout_s: float | None = INPUT_TIMEOUT_S,
    redact: bool = False,
) -> IngestOutcome:
    """Ingest one input into ``store_dir``; every failure becomes an error outcome, not a raise.

    Args:
        source: The DICOM series or volume file, as found by ``discover_sources``.
        store_dir: Root of the volume store; the array goes to ``volumes/<scan_id>.npy``.
        spacing: Isotropic target spacing in mm.
        timeout_s: Time box of this input (None: none); past it the input is refused.
        redact: Keep source paths out of the record and of every message.
    """
    start = time.perf_counter()
    light = replace(source, headers=())  # what the parent needs back, without the headers
    scan_id = scan_id_for(source)
    label = scan_id if redact else source.source_path
    input_bytes = 0
    silence_itk_warnings()  # they quote absolute paths on stderr
    try:
        with time_box(timeout_s):
            input_bytes = _check_regular_files(source, label)
            scan = _ingest(source, Path(store_dir), spacing, label, redact)
        return IngestOutcome(
            light, scan=scan, seconds=time.perf_counter() - start, input_bytes=input_bytes
        )
    except InvalidSeriesError as err:
        reason, message = err.reason, str(err)
    except InputTimeout:
        reason = "timeout"
        message = (
            f"{label}: reading took longer than {timeout_s:.0f} s (--input-timeout); check "
            "that its files are complete and not on a stalled share, or raise the limit"
        )
    except DAMAGED_VALUE_ERRORS as err:
        reason = "bad_header_value"  # a damaged element the readers did not expect
        message = f"{label}: a header value cannot be used ({type(err).__name__}: {err}); the "
        message += "files are damaged — export the series again"
    except MemoryError:
        reason = "out_of_memory"
        message = f"{label}: ran out of memory; ingest with fewer --workers"
    except StoreWriteError as err:  # the store, not the input: a full disk, a quota
        reason = "store_write"
        message = f"{label}: its volume {err}"
    except Exception as err:  # one bad series never stops the job; the message says what broke
        logger.debug("unexpected failure on %s", label, exc_info=not redact)
        reason = "unexpected"
        message = f"{label}: {type(err).__name__}: {err}"
    error = IngestErrorRecord(
        source_key=source.source_key,
        source_root=redacted_root(source.source_root) if redact else source.source_root,
        source_path=label,
        series_uid=source.series_uid,
        reason=reason,
        message=scrub_paths(message, source, redact),
    )
    return IngestOutcome(
        light, error=error, seconds=time.perf_counter() - start, input_bytes=input_bytes
    )


def load_readers() -> None:
    """Import what ``ingest_one`` needs (the DICOM reader, SimpleITK) in this process: a pool
    forked afterwards shares them, where each worker would otherwise import them again."""
    from ctae_core.io import dicom_series, resample  # noqa: F401

    silence_itk_warnings()


def refusal_record(refused: RefusedInput, *, redact: bool = False) -> IngestErrorRecord:
    """The ``ingest_errors`` row of a file or folder that discovery refused."""
    label = refusal_id(refused) if redact else refused.source_path
    what = {
        "not_a_regular_file": "not a regular file ({detail}); such entries are never opened — "
        "replace it with the file itself",
        "broken_link": "{detail}; restore the file it points to or delete the link",
        "symlink_loop": "{detail}; fix or delete the link",
        "unreadable": "unreadable: {detail}; grant read access to the user running ctae",
        "unreadable_folder": "unreadable folder: {detail}; grant read and search access to "
        "the user running ctae",
        "empty_file": "empty file ({detail}); the copy is incomplete — copy it again",
        "not_dicom": "not DICOM: {detail}; delete or rename it if it is not a scan",
        "archive": "an archive ({detail}); ctae reads folders of files, not inside archives: "
        "unpack it (e.g. `unzip FILE -d FOLDER`, `tar -xf FILE -C FOLDER`) and ingest the folder",
        "not_an_image": "a DICOM object without an image (a report, key object or "
        "presentation state): nothing to ingest",
    }.get(refused.reason, "{detail}")
    probe = SeriesSource("file", refused.source_root, refused.source_path, None, (), "")
    return IngestErrorRecord(
        source_key=refused.source_key,
        source_root=redacted_root(refused.source_root) if redact else refused.source_root,
        source_path=label,
        series_uid=None,
        reason=refused.reason,
        message=scrub_paths(f"{label}: " + what.format(detail=refused.detail), probe, redact),
    )


def refusal_id(refused: RefusedInput) -> str:
    """Pseudonymous id of a refused file or folder, shaped like a scan id."""
    digest = hashlib.blake2b(refused.source_key.encode(), key=SCAN_ID_SALT, digest_size=10)
    return "f" + digest.hexdigest()[1:]


def redacted_root(root: str) -> str:
    """What ``source_root`` holds under ``--redact-paths``: a keyed hash of the root."""
    digest = hashlib.blake2b(root.encode(), key=SCAN_ID_SALT, digest_size=8)
    return REDACTED_ROOT + digest.hexdigest()


def scrub_paths(message: str, source: SeriesSource, redact: bool) -> str:
    """``message`` without absolute paths: relative to the source root, or (``redact``) with
    every file and folder name of the input replaced."""
    root = source.source_root.rstrip(os.sep)
    for index, path in sorted(enumerate(source.files), key=lambda f: -len(f[1])):
        relative = os.path.relpath(path, root)
        message = message.replace(path, f"file {index + 1}" if redact else relative)
    message = message.replace(root + os.sep, "").replace(root, ".")
    if redact:
        names = {part for f in source.files for part in Path(os.path.relpath(f, root)).parts}
        names |= set(Path(source.source_path).parts)
        for name in sorted(names, key=len, reverse=True):
            if len(name) >= 3 and name not in ("..", "file"):
                message = message.replace(name, "<redacted>")
    return message


@contextmanager
def time_box(seconds: float | None) -> Iterator[None]:
    """Raise ``InputTimeout`` in this thread after ``seconds``; in a pool worker, end the
    process ``HARD_KILL_GRACE_S`` later if native code ignored it (the pool retries, then
    reports the input)."""
    usable = seconds is not None and threading.current_thread() is threading.main_thread()
    if not usable or not hasattr(signal, "setitimer"):
        yield
        return

    def expire(signum: int, frame: object) -> None:
        raise InputTimeout

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    hard = None
    if multiprocessing.parent_process() is not None:
        hard = threading.Timer(seconds + HARD_KILL_GRACE_S, os._exit, args=(HARD_KILL_EXIT,))
        hard.daemon = True
        hard.start()
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if hard is not None:
            hard.cancel()


MAX_RESAMPLED_VOXELS = 2_000_000_000
"""More voxels than any body CT holds at 0.5 mm (4 GB as int16): a damaged spacing, or a
``--spacing`` far finer than the scan's own."""
MAX_EXTENT_MM = 2500.0
"""Longer than any patient on any axis: a scan that spans more has a damaged spacing."""


def _check_resampled_size(
    shape: tuple[int, ...], spacing_zyx_mm: tuple[float, ...], target_mm: float, label: str
) -> None:
    """Refuse a volume whose spacing is not positive and finite, or would resample to an
    absurd size (a damaged header), before the resampler tries to allocate it."""
    spacings = np.asarray(spacing_zyx_mm, dtype=float)
    voxels = float(np.prod(np.asarray(shape) * spacings / target_mm))
    extent_mm = np.asarray(shape) * spacings
    sound = bool(np.all(np.isfinite(spacings)) and np.all(spacings > 0)
                 and np.all(extent_mm <= MAX_EXTENT_MM))
    if sound and voxels > MAX_RESAMPLED_VOXELS:
        # the header is fine: the spacing asked for is what makes it absurd (blamed on the
        # header until stop 56)
        extent = tuple(round(float(v)) for v in extent_mm)
        raise InvalidSeriesError(
            f"{label}: at --spacing {target_mm} mm this scan ({extent[0]} × {extent[1]} × "
            f"{extent[2]} mm) would span {voxels:.3g} voxels, more than the "
            f"{MAX_RESAMPLED_VOXELS:.0e} a volume may hold; pass a coarser --spacing (the "
            "models read 3 mm)",
            "implausible_geometry",
        )
    if not sound or not voxels <= MAX_RESAMPLED_VOXELS:
        raise InvalidSeriesError(
            f"{label}: voxel spacing {tuple(round(float(v), 4) for v in spacings)} mm cannot be "
            "right (it is not positive, spans more than 2.5 m, or the scan would span "
            f"{voxels:.3g} voxels at {target_mm} mm); the header is damaged — export it again",
            "implausible_geometry",
        )


def _check_regular_files(source: SeriesSource, label: str) -> int:
    """Total bytes of the input's files; refuses one that is no longer a regular file."""
    total = 0
    for index, path in enumerate(source.files):
        try:
            info = os.stat(path)
        except OSError as err:
            raise InvalidSeriesError(
                f"{label}: file {index + 1} of {len(source.files)} vanished or became "
                f"unreadable since discovery ({err.strerror}); run ingest again",
                "unreadable",
            ) from err
        if not stat.S_ISREG(info.st_mode):
            raise InvalidSeriesError(
                f"{label}: file {index + 1} of {len(source.files)} is no longer a regular file; "
                "it is not opened",
                "not_a_regular_file",
            )
        total += info.st_size
    return total


def _ingest(
    source: SeriesSource, store_dir: Path, spacing: float, label: str, redact: bool
) -> ScanRecord:
    from ctae_core.io.resample import resample_isotropic

    if source.kind == "dicom":
        from ctae_core.io.dicom_series import read_dicom_series

        volume, facts = read_dicom_series(source.files, label, source.headers)
    else:
        from ctae_core.io.volume_files import read_volume_file

        volume, facts = read_volume_file(source.files[0], label)
    _check_resampled_size(volume.shape, volume.spacing_zyx_mm, spacing, label)
    resampled = resample_isotropic(volume, spacing)
    density = native_density(volume.hu, volume.spacing_zyx_mm)  # 3 mm averages a snap away
    noise_hu = native_noise_estimate(volume.hu)  # and the noise of a fine pixel
    del volume
    scan_id = scan_id_for(source)
    path = save_volume(resampled.hu, scan_volume_path(store_dir, scan_id))
    content_hash = hashlib.sha256(np.ascontiguousarray(resampled.hu).tobytes()).hexdigest()
    notes = list(facts.warnings)
    if source.refused_beside:
        notes.append(
            f"{source.refused_beside} file(s) beside its slices were refused (see "
            "ingest_errors): a slice among them would leave a gap"
        )
    facts = replace(facts, warnings=tuple(scrub_paths(w, source, redact) for w in notes))
    if redact:
        source = replace(source, source_root=redacted_root(source.source_root), source_path=label)
    return _record(source, scan_id, facts, resampled.hu, spacing, content_hash, path, density,
                   noise_hu)


def _record(
    source: SeriesSource,
    scan_id: str,
    facts: ScanFacts,
    hu: np.ndarray,
    spacing: float,
    content_hash: str,
    path: Path,
    density: NativeDensity,
    native_noise_hu: float,
) -> ScanRecord:
    stats = scan_statistics(hu, spacing)
    return ScanRecord(
        scan_id=scan_id,
        source_kind=source.kind,
        source_root=source.source_root,
        source_path=source.source_path,
        series_uid=source.series_uid,
        fingerprint=source.fingerprint,
        content_hash=content_hash,
        manufacturer=facts.manufacturer,
        model=facts.model,
        kernel=facts.kernel,
        slice_thickness_mm=facts.slice_thickness_mm,
        orig_size_z=facts.orig_size_zyx[0],
        orig_size_y=facts.orig_size_zyx[1],
        orig_size_x=facts.orig_size_zyx[2],
        orig_spacing_z_mm=facts.orig_spacing_zyx_mm[0],
        orig_spacing_y_mm=facts.orig_spacing_zyx_mm[1],
        orig_spacing_x_mm=facts.orig_spacing_zyx_mm[2],
        orig_direction=[float(v) for v in facts.orig_direction],
        gantry_tilt_deg=facts.gantry_tilt_deg,
        missing_slices=facts.missing_slices,
        duplicate_slices=facts.duplicate_slices,
        reversed_slices=facts.reversed_slices,
        warnings="; ".join(facts.warnings),
        spacing_mm=float(spacing),
        size_z=stats.size_zyx[0],
        size_y=stats.size_zyx[1],
        size_x=stats.size_zyx[2],
        pixel_count=stats.pixel_count,
        hu_mean=stats.hu_mean,
        hu_std=stats.hu_std,
        hu_min=stats.hu_min,
        hu_max=stats.hu_max,
        hu_p1=stats.hu_p1,
        hu_p99=stats.hu_p99,
        body_voxels=stats.body_voxels,
        metal_voxels=stats.metal_voxels,
        hu_histogram=list(stats.hu_histogram),
        volume_path=str(path),
        native_metal_mm3=density.metal_mm3,
        skin_object_mm3=density.skin_object_mm3,
        inner_object_mm3=density.inner_object_mm3,
        longest_object_mm=density.longest_object_mm,
        native_noise_hu=native_noise_hu,
    )
