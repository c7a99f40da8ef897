"""What the interactive viewer loads for one scan: the series as acquired when its source
files are reachable (else the stored isotropic volume, and it says which), with the run's
reconstruction and |error| placed on it as overlays by their physical grids.

The volumes are written once as NIfTI files into a per-user cache folder that the browser
fetches over HTTP (``volume_viewer``): a 512×512×300 series is 157 MB, which must not ride the
websocket again at every rerun (a label, a slider), nor count against its message limit.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ctae_core.anomaly import hottest_voxel
from ctae_core.geometry import LPS_TO_RAS, lps_affine, ras_affine, rescaled_grid
from ctae_core.io.native_series import SourceUnavailableError, read_native_volume
from ctae_core.io.nifti import write_nifti
from ctae_core.io.resample import isotropic_grid
from ctae_core.io.volume_store import load_volume

logger = logging.getLogger(__name__)

VIEWER_CACHE = Path(tempfile.gettempdir()) / f"ctae-viewer-{os.getuid()}"
"""Where the viewer's NIfTI files live (served read-only to the browser)."""
CACHE_SCANS = 6
"""Scans kept in the cache; older ones are deleted when a new one is written."""
MAX_NATIVE_BYTES = 2_000_000_000
"""Largest series shown as acquired (int16 voxels); larger ones show the stored volume."""


@dataclass(frozen=True)
class ViewerScan:
    """The files of one scan in ``VIEWER_CACHE`` and what they show."""

    volume: str
    native: bool
    note: str
    overlays: list[tuple[str, str]] = field(default_factory=list)  # (role, file name)
    crosshair_mm: list[float] | None = None  # RAS mm of the hottest |error| region


def _native(scan: dict[str, Any], stored_shape: tuple[int, ...]):
    """(native volume, stored grid origin) or (None, why not)."""
    try:
        volume = read_native_volume(scan["source_root"], scan["source_path"], scan["series_uid"])
    except SourceUnavailableError as err:
        return None, str(err)
    origin, size = isotropic_grid(volume, float(scan["spacing_mm"]))
    if tuple(int(n) for n in size[::-1]) != tuple(stored_shape):
        return None, "the source files no longer match the stored scan (changed since ingest)"
    if volume.hu.nbytes > MAX_NATIVE_BYTES:
        return None, f"the series is {volume.hu.nbytes / 1e9:.1f} GB"
    return volume, origin


def _cache_key(scan: dict[str, Any]) -> str:
    stamps = []
    for key in ("volume_path", "recon_path", "error_path"):
        path = scan.get(key)
        stamps.append(f"{path}:{os.stat(path).st_mtime_ns if path and os.path.exists(path) else 0}")
    hot = [scan.get(k) for k in ("hot_z", "hot_y", "hot_x")]
    text = "|".join([*stamps, str(scan.get("source_root")), str(scan.get("source_path")), str(hot)])
    return f"{scan['scan_id']}-{hashlib.sha1(text.encode()).hexdigest()[:12]}"


def _evict(keep: str) -> None:
    sidecars = sorted(VIEWER_CACHE.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in sidecars[CACHE_SCANS:]:
        if old.stem != keep:
            for path in VIEWER_CACHE.glob(f"{old.stem}*"):
                path.unlink(missing_ok=True)


def viewer_scan(scan: dict[str, Any]) -> ViewerScan:
    """The scan's viewer files (written on first use, reused while its inputs are unchanged).

    Args:
        scan: The scan's row of ``views.scan_table`` (paths, source, spacing) as a dict.

    Raises:
        FileNotFoundError: the stored volume is missing.
    """
    key = _cache_key(scan)
    sidecar = VIEWER_CACHE / f"{key}.json"
    if sidecar.exists():
        meta = json.loads(sidecar.read_text())
        if all((VIEWER_CACHE / f).exists() for f in [meta["volume"], *(f for _, f in meta["overlays"])]):
            os.utime(sidecar)
            return ViewerScan(**{**meta, "overlays": [tuple(o) for o in meta["overlays"]]})
    result = _write(scan, key)
    sidecar.write_text(json.dumps(asdict(result)))
    _evict(keep=key)
    return result


def _write(scan: dict[str, Any], key: str) -> ViewerScan:
    spacing = float(scan["spacing_mm"])
    stored = load_volume(scan["volume_path"])
    native, why = _native(scan, stored.shape)
    volume_file = f"{key}.nii.gz"  # gzip framing at level 0: see ctae_core.io.nifti
    if native is not None:
        grid_origin = why
        write_nifti(VIEWER_CACHE / volume_file, native.hu,
                    ras_affine(native.spacing_zyx_mm, native.origin_xyz_mm, native.direction), 0)
        dz, dy, dx = native.spacing_zyx_mm
        note = (f"As acquired: {native.shape[2]}×{native.shape[1]}×{native.shape[0]} voxels of "
                f"{dx:.2f}×{dy:.2f}×{dz:.2f} mm, from the source files")
    else:
        grid_origin = np.zeros(3)
        write_nifti(VIEWER_CACHE / volume_file, np.asarray(stored), ras_affine((spacing,) * 3), 0)
        note = (f"Stored {spacing:g} mm volume ({stored.shape[2]}×{stored.shape[1]}×"
                f"{stored.shape[0]}): native resolution unavailable — {why}")
    overlays, crosshair = [], None
    for role in ("reconstruction", "error"):
        path = scan.get("recon_path" if role == "reconstruction" else "error_path")
        if not isinstance(path, str) or not path:
            continue
        try:
            array = np.asarray(load_volume(path))
        except FileNotFoundError as err:
            logger.warning("viewer overlay missing: %s", err)
            continue
        grid_spacing, origin = rescaled_grid(stored.shape, spacing, grid_origin, array.shape)
        name = f"{key}-{role}.nii.gz"
        write_nifti(VIEWER_CACHE / name, array, ras_affine(grid_spacing, origin), 0)
        overlays.append((role, name))
        if role == "error":
            crosshair = _hottest_ras(scan, array, grid_spacing, origin, spacing, grid_origin)
    return ViewerScan(volume_file, native is not None, note, overlays, crosshair)


def _hottest_ras(scan: dict[str, Any], error: np.ndarray, grid_spacing: Any, origin: Any,
                 spacing: float, grid_origin: Any) -> list[float]:
    """RAS mm of the scan's hottest region: the one `ctae score` stored (on the stored grid),
    else the hottest box of the |error| volume (runs scored before schema v8)."""
    stored = [scan.get(k) for k in ("hot_z", "hot_y", "hot_x")]
    if all(v is not None and v == v for v in stored):
        z, y, x = (int(v) for v in stored)
        lps = lps_affine((spacing,) * 3, grid_origin) @ np.array([x, y, z, 1.0])
    else:
        z, y, x = hottest_voxel(error)
        lps = lps_affine(grid_spacing, origin) @ np.array([x, y, z, 1.0])
    return [float(v) for v in (LPS_TO_RAS @ lps)[:3]]
