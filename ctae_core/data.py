"""Training data: resampling to the model spacing, μ/σ, and a Dataset of int16 volumes.

The Dataset hands out *int16 HU* crops (a few hundred KB each) with the offset where each sits
in the padded box; ``assemble_batch`` pads, places and normalises them on the training device,
so the CPU loader never touches float volumes and the GPU stays fed.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from ctae_core.padding import AIR_HU, crop_to_fit, placement, random_slab
from ctae_core.training_set import SPLITS, ScanItem, SplitError, assign_splits

__all__ = ["SPLITS", "ScanItem", "SplitError", "VolumeDataset", "assign_splits"]

logger = logging.getLogger(__name__)

def rescale_volume(hu: np.ndarray, stored_spacing_mm: float, target_spacing_mm: float) -> np.ndarray:
    """Resample an isotropic HU volume (Z, Y, X) to another isotropic spacing; float32 out.

    Coarser grids average the voxels they cover ('area', so no aliasing); finer grids
    interpolate trilinearly. Same spacing returns a float32 copy.
    """
    vol = np.asarray(hu, dtype=np.float32)
    scale = float(stored_spacing_mm) / float(target_spacing_mm)
    if abs(scale - 1.0) < 1e-6:
        return vol.copy()
    size = tuple(max(1, int(round(n * scale))) for n in vol.shape)
    t = torch.from_numpy(np.ascontiguousarray(vol))[None, None]
    if scale < 1:
        out = F.interpolate(t, size=size, mode="area")
    else:
        out = F.interpolate(t, size=size, mode="trilinear", align_corners=False)
    return out[0, 0].numpy()


def normalisation_stats(volumes: Iterable[np.ndarray]) -> tuple[float, float]:
    """μ and σ in HU over every voxel of ``volumes`` (eq. 3.1), accumulated in float64."""
    n, total, squares = 0, 0.0, 0.0
    for vol in volumes:
        v = np.asarray(vol, dtype=np.float64)
        n += v.size
        total += float(v.sum())
        squares += float(np.square(v).sum())
    if n == 0:
        raise ValueError("no training voxels to compute the normalisation from")
    mean = total / n
    std = float(np.sqrt(max(squares / n - mean * mean, 0.0)))
    if std < 1e-6:
        raise ValueError(f"training voxels have zero spread (all {mean:.0f} HU); check the ingested scans")
    return mean, std


def _item_seed(seed: int, epoch: int, index: int) -> int:
    digest = hashlib.blake2b(f"{seed}:{epoch}:{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


class VolumeDataset(Dataset):
    """Scans at the model spacing as int16 crops plus their placement in the padded box.

    Args:
        items: The scans.
        loader: Reads a stored volume (memory-mapped int16 HU), e.g. ``volume_store.load_volume``.
        spacing_mm: Model input spacing; scans are resampled to it on the fly (and cached).
        box_zyx: The padded training box, (slab or pad Z, pad Y, pad X).
        slab_z: Train on random z-slabs of this many slices; ``None`` = whole scans.
        seed: With the epoch and index, fixes slab and placement: deterministic, resumable.
        random_placement: Random (training) or centred (evaluation) placement.
        cache: Keep resampled int16 volumes in memory (small at coarse spacings).
        z_multiple: Evaluation of fully convolutional models: the box's Z is each scan's own
            slice count rounded up to this multiple (see ``InputSpec.z_multiple``).
        fit_box: With ``z_multiple``, Y and X too are each scan's own size rounded up.
        patch: Train on random cubes of this side (the box), centred on a body voxel nine
            times in ten; ``None`` = slabs or whole scans.
        repeats: Items per scan per epoch (several cubes from each scan).
    """

    def __init__(
        self,
        items: Sequence[ScanItem],
        loader: Callable[[str], np.ndarray],
        spacing_mm: float,
        box_zyx: tuple[int, int, int],
        slab_z: int | None = None,
        seed: int = 0,
        random_placement: bool = True,
        cache: bool = True,
        z_multiple: int | None = None,
        fit_box: bool = False,
        patch: int | None = None,
        repeats: int = 1,
    ) -> None:
        self.items = list(items)
        self.loader = loader
        self.spacing_mm = spacing_mm
        self.box_zyx = tuple(box_zyx)
        self.slab_z = slab_z
        self.seed = seed
        self.random_placement = random_placement
        self.cache: dict[int, np.ndarray] | None = {} if cache else None
        self.z_multiple = z_multiple
        self.fit_box = fit_box
        self.patch = patch
        self.repeats = repeats
        self.epoch = 0

    def box_for(self, shape_zyx: tuple[int, ...]) -> tuple[int, int, int]:
        """The padded box a crop of ``shape_zyx`` goes into."""
        if self.z_multiple is None or self.slab_z is not None:
            return self.box_zyx  # type: ignore[return-value]
        own = [-(-max(1, int(n)) // self.z_multiple) * self.z_multiple for n in shape_zyx]
        return tuple(own) if self.fit_box else (own[0], self.box_zyx[1], self.box_zyx[2])  # type: ignore[return-value]

    def __len__(self) -> int:
        return len(self.items) * self.repeats

    def set_epoch(self, epoch: int) -> None:
        """Draw new slabs and placements for ``epoch``."""
        self.epoch = epoch

    def volume(self, index: int) -> np.ndarray:
        """Scan ``index`` in int16 HU at the model spacing (Z, Y, X)."""
        if self.cache is not None and index in self.cache:
            return self.cache[index]
        item = self.items[index]
        hu = self.loader(item.volume_path)
        if abs(item.spacing_mm - self.spacing_mm) > 1e-6:
            hu = rescale_volume(hu, item.spacing_mm, self.spacing_mm)
            hu = np.clip(np.rint(hu), -32768, 32767).astype(np.int16)
        else:
            hu = np.asarray(hu, dtype=np.int16)
        if self.cache is not None:
            self.cache[index] = hu
        return hu

    def __getitem__(self, index: int) -> tuple[torch.Tensor, ...]:
        """``(hu, offset)``: int16 crop (z, y, x) and its (3,) start offset in the box; cubes
        add a third item, the seed of the cube's input noise (the same on any number of ranks)."""
        item_seed = _item_seed(self.seed, self.epoch, index)
        rng = np.random.default_rng(item_seed)
        index %= len(self.items)
        if self.patch is not None:
            crop, offset = body_patch(self.volume(index), self.patch, rng)
            return crop, offset, torch.tensor(item_seed >> 1, dtype=torch.int64)
        hu, z_offset = self.volume(index), None
        if self.slab_z is not None:
            kept, z_offset = random_slab(hu.shape[0], self.slab_z, rng)
            hu = hu[kept]
        box = self.box_for(hu.shape)
        hu, _ = crop_to_fit(hu, box, self.items[index].scan_id)
        region = placement(hu.shape, box, rng if self.random_placement else None)
        starts = [s.start for s in region]
        if z_offset is not None:
            starts[0] = z_offset
        offset = torch.tensor(starts, dtype=torch.int64)
        # a copy: at the stored spacing ``hu`` is a read-only memory map, which torch must not wrap
        return torch.from_numpy(np.array(hu, dtype=np.int16)), offset


BODY_SHARE = 0.9
"""Share of training cubes centred on a body voxel; the rest anywhere (air and the scan's edge)."""


def body_patch(hu: np.ndarray, side: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A random ``side``³ cube of ``hu`` (int16 crop, (3,) offset in the cube's box), centred on
    a body voxel (HU > −990) nine times in ten; axes shorter than ``side`` are kept whole and
    placed at random in the box (the rest is air)."""
    shape = np.array(hu.shape)
    centre = rng.integers(0, shape)
    if rng.random() < BODY_SHARE:  # a few random probes find the body without a full-scan pass
        probes = rng.integers(0, shape, size=(64, 3))
        inside = np.flatnonzero(np.asarray(hu[tuple(probes.T)]) > -990)
        if inside.size:
            centre = probes[inside[0]]
    start = np.clip(centre - side // 2, 0, np.maximum(shape - side, 0))
    crop = hu[tuple(slice(int(a), int(a) + side) for a in start)]
    offset = [int(rng.integers(0, side - n + 1)) for n in crop.shape]
    return torch.from_numpy(np.array(crop, dtype=np.int16)), torch.tensor(offset, dtype=torch.int64)


def collate_crops(batch: list[tuple[torch.Tensor, ...]]) -> tuple[Any, ...]:
    """Keep variable-size int16 crops as a list; stack the offsets to (B, 3) (and the cubes'
    noise seeds to (B,))."""
    stacked = [torch.stack([item[k] for item in batch]) for k in range(1, len(batch[0]))]
    return ([item[0] for item in batch], *stacked)


def assemble_batch(
    crops: list[torch.Tensor],
    offsets: torch.Tensor,
    box_zyx: tuple[int, int, int],
    mean_hu: float,
    std_hu: float,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Pad, place and normalise int16 crops on ``device``: (B, 1, *box_zyx) float32.

    The box is filled with normalised air, (AIR_HU − μ) / σ, then each crop is copied in at
    its offset as (HU − μ) / σ.
    """
    batch = torch.full((len(crops), 1, *box_zyx), (AIR_HU - mean_hu) / std_hu, device=device)
    for i, (hu, off) in enumerate(zip(crops, offsets.tolist(), strict=True)):
        z, y, x = off
        dz, dy, dx = hu.shape
        vals = (hu.to(device, non_blocking=True).float() - mean_hu) / std_hu
        batch[i, 0, z : z + dz, y : y + dy, x : x + dx] = vals
    return batch
