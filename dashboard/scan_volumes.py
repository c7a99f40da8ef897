"""What the interactive viewer is sent for one scan: the series as acquired when its source
files are reachable (else the stored isotropic volume, and it says which), with the run's
reconstruction and |error| placed on it as overlays by their physical grids."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import streamlit as st

from ctae_core.anomaly import hottest_voxel
from ctae_core.geometry import LPS_TO_RAS, lps_affine, ras_affine, rescaled_grid
from ctae_core.io.native_series import SourceUnavailableError, read_native_volume
from ctae_core.io.nifti import nifti_bytes
from ctae_core.io.volume_store import load_volume
from ctae_core.resample import isotropic_grid

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ViewerScan:
    """NIfTI bytes of the scan and its overlays, and what they show."""

    volume: bytes
    native: bool
    note: str
    overlays: list[tuple[str, bytes]] = field(default_factory=list)  # (role, NIfTI bytes)
    crosshair_mm: list[float] | None = None  # RAS mm of the hottest |error| region


def _native(scan: dict, stored_shape: tuple[int, ...], budget_bytes: int):
    """(native volume, stored grid origin) or (None, why not)."""
    try:
        volume = read_native_volume(scan["source_root"], scan["source_path"], scan["series_uid"])
    except SourceUnavailableError as err:
        return None, str(err)
    origin, size = isotropic_grid(volume, float(scan["spacing_mm"]))
    if tuple(int(n) for n in size[::-1]) != tuple(stored_shape):
        return None, "the source files no longer match the stored scan (changed since ingest)"
    if volume.hu.nbytes > budget_bytes:
        return None, (
            f"the series is {volume.hu.nbytes / 1e6:.0f} MB, over the viewer's "
            f"{budget_bytes / 1e6:.0f} MB (raise server.maxMessageSize)"
        )
    return volume, origin


@st.cache_resource(max_entries=2, show_spinner="Reading the series …")
def viewer_scan(scan: dict, budget_bytes: int) -> ViewerScan:
    """The scan at native resolution when reachable (else stored), with its overlays.

    Args:
        scan: The scan's row of ``views.scan_table`` (paths, source, spacing) as a dict.
        budget_bytes: Largest series to send (the server's websocket message limit).
    """
    spacing = float(scan["spacing_mm"])
    stored = load_volume(scan["volume_path"])
    native, why = _native(scan, stored.shape, budget_bytes)
    if native is not None:
        grid_origin = why
        volume = nifti_bytes(
            native.hu, ras_affine(native.spacing_zyx_mm, native.origin_xyz_mm, native.direction),
            compress=False,
        )
        dz, dy, dx = native.spacing_zyx_mm
        note = (f"As acquired: {native.shape[2]}×{native.shape[1]}×{native.shape[0]} voxels of "
                f"{dx:.2f}×{dy:.2f}×{dz:.2f} mm, from the source files")
    else:
        grid_origin = np.zeros(3)
        volume = nifti_bytes(np.asarray(stored), ras_affine((spacing,) * 3), compress=False)
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
        overlays.append((role, nifti_bytes(array, ras_affine(grid_spacing, origin), compress=False)))
        if role == "error":
            z, y, x = hottest_voxel(array)
            lps = lps_affine(grid_spacing, origin) @ np.array([x, y, z, 1.0])
            crosshair = [float(v) for v in (LPS_TO_RAS @ lps)[:3]]
    return ViewerScan(volume, native is not None, note, overlays, crosshair)
