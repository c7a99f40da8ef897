"""A synthetic catalog with real arrays behind it, for tests, benchmarks and the dashboard's
scale checks: torso phantoms (``ctae_core.phantoms.torso``) in the volume store, and for a run
their blurred reconstruction and |error|, then every row via ``data_catalog.synthetic``."""

from __future__ import annotations

import numpy as np

from ctae_core.io.volume_store import run_volume_path, save_volume, scan_volume_path
from ctae_core.phantoms import torso
from data_catalog.settings import CatalogSettings
from data_catalog.synthetic import (
    HU_EDGES,
    SyntheticFiles,
    SyntheticSpec,
    file_has_metal,
    write_synthetic_rows,
)

__all__ = ["SyntheticSpec", "build_synthetic_catalog", "write_synthetic_files"]


def _downsample2(vol: np.ndarray) -> np.ndarray:
    """Block mean over 2×2×2 voxels (the run's coarser grid), float64."""
    nz, ny, nx = (s // 2 * 2 for s in vol.shape)
    v = vol[:nz, :ny, :nx].astype(np.float64)
    return v.reshape(nz // 2, 2, ny // 2, 2, nx // 2, 2).mean(axis=(1, 3, 5))


def write_synthetic_files(settings: CatalogSettings, spec: SyntheticSpec) -> SyntheticFiles:
    """Write the spec's phantom volumes (and a run's recon / |error| arrays) to the store."""
    files = SyntheticFiles()
    for i in range(spec.n_volume_files):
        scan_id = f"syn{i:07d}"
        vol = torso(spec.shape_zyx, np.random.default_rng(spec.seed * 1000 + i), metal=file_has_metal(i))
        files.volume_paths.append(str(save_volume(vol, scan_volume_path(settings.store_dir, scan_id))))
        files.histograms.append(np.histogram(vol, bins=HU_EDGES)[0].astype(np.int32))
        if spec.run_id is not None:
            coarse = _downsample2(vol)
            recon = np.clip(coarse, -1000, 400)  # an autoencoder blurs away metal and bone peaks
            run_dir = settings.run_dir(spec.run_id)
            recon_file = save_volume(recon.astype(np.int16), run_volume_path(run_dir, "recon", scan_id))
            error_file = save_volume(np.abs(coarse - recon).astype(np.int16),
                                     run_volume_path(run_dir, "error", scan_id))
            files.recon_paths.append(str(recon_file))
            files.error_paths.append(str(error_file))
    return files


def build_synthetic_catalog(settings: CatalogSettings, spec: SyntheticSpec) -> dict[str, float]:
    """Fill ``settings``' (empty) catalog and store with the synthetic dataset ``spec``; returns
    a summary (scans, threshold, flagged, planted outliers, labels)."""
    return write_synthetic_rows(settings, spec, write_synthetic_files(settings, spec))
