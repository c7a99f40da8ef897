"""Re-read a scan from its source files at the resolution it was acquired (the viewer's
native view): the same readers as ingest, without resampling."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ctae_core.volume import Volume


class SourceUnavailableError(Exception):
    """The scan's source files are gone, moved or changed; the stored volume must do."""


def read_native_volume(source_root: str, source_path: str, series_uid: str | None = None) -> Volume:
    """The scan as acquired: HU (Z, Y, X) int16 with the source's spacing, origin and direction.

    Args:
        source_root: Folder the scan was ingested from (``scans.source_root``).
        source_path: Series folder (DICOM) or volume file below it (``scans.source_path``).
        series_uid: Picks the series when the folder holds several.

    Raises:
        SourceUnavailableError: the files are not reachable or no longer hold the series.
    """
    path = Path(source_root) / source_path
    if not path.exists():
        raise SourceUnavailableError(f"{path}: source not reachable from this machine")
    try:
        if path.is_file():
            from ctae_core.io.volume_files import read_volume_file

            volume, _ = read_volume_file(str(path), source_path)
        else:
            volume = _read_dicom(path, source_path, series_uid)
    except SourceUnavailableError:
        raise
    except Exception as err:  # any reader failure means: show the stored volume instead
        raise SourceUnavailableError(f"{path}: could not be re-read ({err})") from err
    from ctae_core.io.resample import BACKGROUND_HU, to_int16_hu

    hu = volume.hu  # DICOM comes as int16 clipped HU already: converting it again cost 0.3 s
    if hu.dtype != np.int16 or int(hu.min()) < BACKGROUND_HU:
        hu = to_int16_hu(hu)
    return Volume(hu, volume.spacing_zyx_mm, volume.origin_xyz_mm, volume.direction)


def _read_dicom(path: Path, label: str, series_uid: str | None) -> Volume:
    from ctae_core.io.dicom_series import read_dicom_series
    from ctae_core.io.sources import discover_sources

    found = [s for s in discover_sources([path]).sources if s.kind == "dicom"]
    if series_uid:
        found = [s for s in found if s.series_uid == series_uid]
    if len(found) != 1:
        raise SourceUnavailableError(
            f"{path}: holds {len(found)} series matching {series_uid or 'the scan'}, not one"
        )
    volume, _ = read_dicom_series(found[0].files, label, found[0].headers,
                                  threads=min(4, os.cpu_count() or 1))
    return volume
