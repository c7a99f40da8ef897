"""What the interactive viewer loads for one scan: the series as acquired when its source
files are reachable (else the stored isotropic volume, and it says which), with the run's
reconstruction, |error| and hottest regions (labelled 1 = hottest) placed on it by their
physical grids.

Everything is written once into a per-user cache folder that the browser fetches over HTTP
(``volume_viewer``): a 512×512×300 series is 157 MB, which must not ride the websocket again at
every rerun (a label, a slider). The series is cached by its UID and its files' sizes and
mtimes, so a second open reads no DICOM file; the overlays by their stored arrays' mtimes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ctae_core.anomaly_map import hottest_regions, region_labels
from ctae_core.geometry import lps_affine, rescaled_grid
from ctae_core.io import viewer_files
from ctae_core.io.native_series import SourceUnavailableError, read_native_volume
from ctae_core.io.resample import isotropic_grid
from ctae_core.io.volume_store import load_volume
from dashboard import component_files

logger = logging.getLogger(__name__)

VIEWER_CACHE = component_files.served_folder("viewer")
"""Where the viewer's files live (served read-only to the browser by ``volume_viewer``)."""
CACHE_SCANS = 6
"""Volumes (and overlay sets) kept in the cache; older ones are deleted when one is written."""
MAX_NATIVE_BYTES = 1_000_000_000
"""Largest series shown as acquired (int16 voxels, held whole by the browser); larger ones
show the stored volume."""
META = "meta.json"
FORMAT = "preview-v2"
"""Part of every volume entry's name: entries of an older layout (one preview or none) are not
reused."""
OVERLAY_FORMAT = "regions-v3"
"""The same for overlay entries (the stored hottest region's rule, and the regions after it)."""


@dataclass(frozen=True)
class ViewerScan:
    """The cached files of one scan and how to place them: every grid is given by its
    voxel (x, y, z) → LPS mm affine; overlays carry the map from the scan's voxels to theirs."""

    folder: str  # the volume's folder in VIEWER_CACHE
    slabs: list[str]  # file names in z order, ``slab_slices`` axial slices each
    slab_slices: int
    shape_zyx: list[int]
    spacing_zyx_mm: list[float]
    affine: list[list[float]]
    native: bool
    note: str
    overlays: list[dict[str, Any]] = field(default_factory=list)
    crosshair_xyz: list[int] | None = None  # the scan's voxel at the hottest |error| region
    regions_xyz: list[list[int]] = field(default_factory=list)  # the scan's voxel at each
    # hottest region's peak, hottest first (the first is ``crosshair_xyz``)
    previews: list[dict[str, Any]] = field(default_factory=list)  # file, factor, shape_zyx of
    # each whole-volume preview, coarsest first


def _entry(name: str) -> dict[str, Any] | None:
    if not component_files.mark_used(VIEWER_CACHE / name):  # the newest used are the ones kept
        return None
    try:
        return json.loads((VIEWER_CACHE / name / META).read_text())
    except FileNotFoundError:  # evicted by another session meanwhile
        return None


def _store(name: str, write) -> dict[str, Any]:
    """Build a cache entry in a temporary folder with ``write(folder) -> meta``, then move it
    into place and delete the oldest entries of its kind."""
    VIEWER_CACHE.mkdir(mode=0o700, parents=True, exist_ok=True)  # in case it was cleaned away
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=VIEWER_CACHE))
    try:
        meta = write(tmp)
        (tmp / META).write_text(json.dumps(meta))
        if not (VIEWER_CACHE / name / META).exists():  # else another session wrote the same
            viewer_files.replace_folder(tmp, VIEWER_CACHE / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    component_files.keep_newest(VIEWER_CACHE, f"{name.split('-')[0]}-*", CACHE_SCANS, spare=name)
    return meta


def _hash(*parts: Any) -> str:
    return hashlib.sha1("|".join(map(str, parts)).encode()).hexdigest()[:16]


def _stamp(path: Any) -> str:
    return f"{path}:{os.stat(path).st_mtime_ns}" if path and os.path.exists(path) else "-"


def _canonical(hu: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flip the axes whose direction points against LPS, so that the browser draws every
    series the same way up (patient's left on the screen's right, head at the top)."""
    for axis_xyz in range(3):
        if affine[axis_xyz, axis_xyz] < 0:
            n = hu.shape[2 - axis_xyz]
            hu = np.flip(hu, axis=2 - axis_xyz)
            flip = np.eye(4)
            flip[axis_xyz, axis_xyz], flip[axis_xyz, 3] = -1.0, n - 1
            affine = affine @ flip
    return hu, affine


def _volume_meta(hu: np.ndarray, affine: np.ndarray, spacing: list[float], **extra) -> Any:
    def write(folder: Path) -> dict[str, Any]:
        slabs = viewer_files.write_slabs(folder, hu)
        return {"slabs": slabs, "slab_slices": viewer_files.slab_slices(hu.shape),
                "previews": viewer_files.write_previews(folder, hu),
                "shape_zyx": list(hu.shape), "spacing_zyx_mm": spacing,
                "affine": affine.tolist(), **extra}
    return write


def _native(scan: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(cache entry, meta) of the series as acquired, read from its files only when they changed."""
    try:
        fingerprint = viewer_files.source_fingerprint(
            scan["source_root"], scan["source_path"], scan["series_uid"])
    except FileNotFoundError as err:
        raise SourceUnavailableError(str(err)) from err
    except (OSError, TypeError) as err:  # unreadable folder, or no source recorded
        raise SourceUnavailableError(f"source not reachable from this machine ({err})") from err
    name = f"n-{_hash(fingerprint, FORMAT)}"
    if (meta := _entry(name)) is not None:
        return name, meta
    volume = read_native_volume(scan["source_root"], scan["source_path"], scan["series_uid"])
    if volume.hu.nbytes > MAX_NATIVE_BYTES:
        raise SourceUnavailableError(f"the series is {volume.hu.nbytes / 1e9:.1f} GB, too large "
                                     "for the browser")
    hu, affine = _canonical(volume.hu, lps_affine(volume.spacing_zyx_mm, volume.origin_xyz_mm,
                                                  volume.direction))
    origin, size = isotropic_grid(volume, float(scan["spacing_mm"]))
    dz, dy, dx = volume.spacing_zyx_mm
    note = (f"As acquired: {hu.shape[2]}×{hu.shape[1]}×{hu.shape[0]} voxels of "
            f"{dx:.2f}×{dy:.2f}×{dz:.2f} mm, from the source files")
    write = _volume_meta(hu, affine, [float(v) for v in volume.spacing_zyx_mm], native=True,
                         note=note, grid_origin=[float(v) for v in origin],
                         grid_size_zyx=[int(n) for n in size[::-1]])
    return name, _store(name, write)


def _stored(scan: dict[str, Any], stored: np.ndarray, why: str) -> tuple[str, dict[str, Any]]:
    spacing = float(scan["spacing_mm"])
    name = f"s-{_hash(_stamp(scan['volume_path']), spacing, FORMAT)}"
    note = (f"Stored {spacing:g} mm volume ({stored.shape[2]}×{stored.shape[1]}×"
            f"{stored.shape[0]}): native resolution unavailable — {why}")
    if (meta := _entry(name)) is None:
        meta = _store(name, _volume_meta(np.asarray(stored), lps_affine((spacing,) * 3),
                                         [spacing] * 3, native=False, note="",
                                         grid_origin=[0.0, 0.0, 0.0],
                                         grid_size_zyx=list(stored.shape)))
    return name, {**meta, "note": note}


def _overlays(scan: dict[str, Any], stored_shape: tuple[int, ...]) -> tuple[str, dict[str, Any]] | None:
    """(cache entry, meta) of the run's reconstruction, |error| and its hottest regions, as
    stored (the regions as one volume: k in the k-th, 1 the hottest)."""
    paths = {role: scan.get(key) for role, key in (("reconstruction", "recon_path"),
                                                   ("error", "error_path"))}
    paths = {role: p for role, p in paths.items() if isinstance(p, str) and os.path.exists(p)}
    if not paths:
        return None
    name = f"o-{_hash(*(_stamp(p) for p in paths.values()), stored_hot_voxel(scan), OVERLAY_FORMAT)}"
    if (meta := _entry(name)) is not None:
        return name, meta

    def write(folder: Path) -> dict[str, Any]:
        layers, peaks = {}, []
        for role, path in paths.items():
            array = np.asarray(load_volume(path))
            viewer_files.write_array(folder / f"{role}.gz", array)
            layers[role] = list(array.shape)
            if role == "error":  # the stored region's rule: the first is what hot_volume_ml measured
                map_mm = float(np.mean(rescaled_grid(stored_shape, float(scan["spacing_mm"]),
                                                     (0.0, 0.0, 0.0), array.shape)[0]))
                regions = hottest_regions(array, map_mm, first_at=first_region_at(scan, array.shape, stored_shape))
                viewer_files.write_array(folder / "region.gz", region_labels(regions, array.shape))
                layers["region"] = list(array.shape)
                peaks = [list(peak_at) for _, peak_at, _ in regions]
        return {"layers": layers, "hottest_zyx": peaks[0] if peaks else None, "regions_zyx": peaks}

    return name, _store(name, write)


def stored_hot_voxel(scan: Any) -> tuple[int, int, int] | None:
    """The hottest region `ctae score` stored for the scan (``hot_z/y/x``, on the stored grid:
    since stop 45 the peak of the region its local error rates rarer), or None (a run scored
    before schema v8)."""
    stored = [scan.get(k) for k in ("hot_z", "hot_y", "hot_x")]
    if not all(v is not None and v == v for v in stored):
        return None
    return tuple(int(v) for v in stored)  # type: ignore[return-value]


def first_region_at(scan: Any, map_shape: tuple[int, ...], stored_shape: tuple[int, ...]
                    ) -> tuple[int, int, int] | None:
    """Where both viewers start the scan's first region: the stored hottest voxel where its map
    lies on the stored grid, else None (a cropped scan's map is the model's crop: the map's own
    peak, as `ctae score` left it)."""
    return stored_hot_voxel(scan) if tuple(map_shape) == tuple(stored_shape) else None


def _hottest_world(scan: dict[str, Any], layers: dict[str, Any], spacing: float,
                   meta: dict[str, Any], grid_spacing: Any, origin: Any) -> np.ndarray | None:
    """LPS mm (homogeneous) of the scan's hottest region: the one `ctae score` stored on the
    stored grid (schema v8), else the peak of the stored anomaly map (older runs)."""
    if (stored := stored_hot_voxel(scan)) is not None:
        z, y, x = stored
        return lps_affine((spacing,) * 3, meta["grid_origin"]) @ np.array([x, y, z, 1.0])
    if layers["hottest_zyx"]:
        z, y, x = layers["hottest_zyx"]
        return lps_affine(grid_spacing, origin) @ np.array([x, y, z, 1.0])
    return None


def viewer_scan(scan: dict[str, Any]) -> ViewerScan:
    """The scan's viewer files (written on first use, reused while its inputs are unchanged).

    Args:
        scan: The scan's row of ``views.scan_table`` (paths, source, spacing) as a dict.

    Raises:
        FileNotFoundError: the stored volume is missing.
        CorruptVolumeError: it is damaged.
    """
    stored = load_volume(scan["volume_path"])
    spacing = float(scan["spacing_mm"])
    try:
        name, meta = _native(scan)
        if tuple(meta["grid_size_zyx"]) != tuple(stored.shape):
            raise SourceUnavailableError(
                "the source files no longer match the stored scan (changed since ingest)")
    except SourceUnavailableError as err:
        name, meta = _stored(scan, stored, str(err))
    scan_affine = np.asarray(meta["affine"])
    overlays, crosshair, regions = [], None, []
    if (found := _overlays(scan, stored.shape)) is not None:
        folder, layers = found
        for role, shape in layers["layers"].items():
            grid_spacing, origin = rescaled_grid(stored.shape, spacing, meta["grid_origin"], shape)
            to_overlay = np.linalg.solve(lps_affine(grid_spacing, origin), scan_affine)
            overlays.append({"role": role, "file": f"{folder}/{role}.gz", "shape_zyx": shape,
                             "to_overlay": to_overlay[:3].round(9).tolist()})
            if role == "error" and (world := _hottest_world(scan, layers, spacing, meta,
                                                            grid_spacing, origin)) is not None:
                crosshair = _scan_voxel(world, scan_affine, meta["shape_zyx"])
            if role == "error":  # the regions after the hottest, each at its peak on the map
                regions = [crosshair] if crosshair is not None else []
                for z, y, x in layers.get("regions_zyx", [])[1:]:
                    world = lps_affine(grid_spacing, origin) @ np.array([x, y, z, 1.0])
                    regions.append(_scan_voxel(world, scan_affine, meta["shape_zyx"]))
    return ViewerScan(name, [f"{name}/{s}" for s in meta["slabs"]], meta["slab_slices"],
                      meta["shape_zyx"], meta["spacing_zyx_mm"], meta["affine"], meta["native"],
                      meta["note"], overlays, crosshair, regions,
                      [{**p, "file": f"{name}/{p['file']}"} for p in meta["previews"]])


def _scan_voxel(world: np.ndarray, scan_affine: np.ndarray, shape_zyx: list[int]) -> list[int]:
    """The scan's voxel (x, y, z) nearest an LPS point (homogeneous), clipped into the scan."""
    voxel = np.rint(np.linalg.solve(scan_affine, world)[:3]).astype(int)
    return [int(np.clip(v, 0, n - 1)) for v, n in zip(voxel, shape_zyx[::-1], strict=True)]
