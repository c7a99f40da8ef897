"""The per-series ingest step that runs in a worker process: read → HU → resample → stats →
store. It never opens the catalog; it returns a picklable ``IngestOutcome`` that the parent
writes in batches (and that a Ray or Dask map can return just the same).
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ctae_core.errors import InvalidSeriesError
from ctae_core.io.sources import ScanFacts, SeriesSource
from ctae_core.io.volume_store import save_volume
from ctae_core.stats import scan_statistics
from data_catalog.scans import IngestErrorRecord, ScanRecord

logger = logging.getLogger(__name__)

SCAN_ID_SALT = b"ctae-scan-id-v1"
"""Key of the pseudonymous scan id: a keyed hash of the source key, never the UID itself."""


@dataclass(frozen=True)
class IngestOutcome:
    """What ingesting one input produced: a scan row or an error row (exactly one is set)."""

    source: SeriesSource
    scan: ScanRecord | None = None
    error: IngestErrorRecord | None = None
    seconds: float = 0.0
    input_bytes: int = 0


def scan_id_for(source: SeriesSource) -> str:
    """Pseudonymous, stable id of an input: keyed BLAKE2b of its source key, 20 hex digits."""
    digest = hashlib.blake2b(source.source_key.encode(), key=SCAN_ID_SALT, digest_size=10)
    return digest.hexdigest()


def volume_path_for(store_dir: Path | str, scan_id: str) -> Path:
    """Where a scan's int16 HU array lives (docs/CONTRACTS.md store layout)."""
    return Path(store_dir) / "volumes" / f"{scan_id}.npy"


def ingest_one(source: SeriesSource, store_dir: Path | str, spacing: float) -> IngestOutcome:
    """Ingest one input into ``store_dir``; every failure becomes an error outcome, not a raise.

    Args:
        source: The DICOM series or volume file, as found by ``discover_sources``.
        store_dir: Root of the volume store; the array goes to ``volumes/<scan_id>.npy``.
        spacing: Isotropic target spacing in mm.
    """
    start = time.perf_counter()
    light = replace(source, headers=())  # what the parent needs back, without the headers
    input_bytes = sum(Path(f).stat().st_size for f in source.files if Path(f).exists())
    try:
        scan = _ingest(source, Path(store_dir), spacing)
        return IngestOutcome(
            light, scan=scan, seconds=time.perf_counter() - start, input_bytes=input_bytes
        )
    except InvalidSeriesError as err:
        reason, message = err.reason, str(err)
    except MemoryError:
        reason = "out_of_memory"
        message = f"{source.source_path}: ran out of memory; ingest with fewer --workers"
    except Exception as err:  # one bad series never stops the job; the message says what broke
        logger.debug("unexpected failure on %s", source.source_path, exc_info=True)
        reason = "unexpected"
        message = f"{source.source_path}: {type(err).__name__}: {err}"
    error = IngestErrorRecord(
        source_key=source.source_key,
        source_root=source.source_root,
        source_path=source.source_path,
        series_uid=source.series_uid,
        reason=reason,
        message=message,
    )
    return IngestOutcome(
        light, error=error, seconds=time.perf_counter() - start, input_bytes=input_bytes
    )


def _ingest(source: SeriesSource, store_dir: Path, spacing: float) -> ScanRecord:
    from ctae_core.io.resample import resample_isotropic

    if source.kind == "dicom":
        from ctae_core.io.dicom_series import read_dicom_series

        volume, facts = read_dicom_series(source.files, source.source_path, source.headers)
    else:
        from ctae_core.io.volume_files import read_volume_file

        volume, facts = read_volume_file(source.files[0], source.source_path)
    resampled = resample_isotropic(volume, spacing)
    del volume
    scan_id = scan_id_for(source)
    path = save_volume(resampled.hu, volume_path_for(store_dir, scan_id))
    content_hash = hashlib.sha256(np.ascontiguousarray(resampled.hu).tobytes()).hexdigest()
    return _record(source, scan_id, facts, resampled.hu, spacing, content_hash, path)


def _record(
    source: SeriesSource,
    scan_id: str,
    facts: ScanFacts,
    hu: np.ndarray,
    spacing: float,
    content_hash: str,
    path: Path,
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
    )
