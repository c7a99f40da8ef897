"""Compact metal and small dense objects measured on the acquired grid, before resampling: the
volume of dense voxels that lie away from bone, and where they lie (on or outside the skin, or
inside the body).

Why at the acquired resolution: a 1–3 mm ECG snap, a valve ring or a small foreign body is
averaged into bone-like HU by the 3 mm resampling, and the stored volume no longer tells it from
a rib. Why away from bone: real inliers already hold many dense voxels where a sharp kernel
overshoots at cortical bone (a B70f chest: 800–20,000 mm³ above 1500 HU), so a plain count
cannot tell metal; a snap on the skin, a ring in the heart or a disc in soft tissue sits among
soft tissue and air. Bone here is what a coarse neighbourhood says: the share of its voxels in
the range of cancellous and cortical bone (``BONE_HU``), which metal itself (above it) and soft
tissue (below it) do not raise.

Where: an ECG electrode's snap, a lead or a cable lies on the skin or in the air beside the body,
where a real scan holds nothing dense but the couch; a valve ring, a clip or a swallowed object
lies inside, among soft tissue. Neither needs to reach ``METAL_HU``: a 1 mm copper core or a
thin ring fills a fraction of a 2–5 mm voxel and reads ~1000–2000 HU. ``DENSE_HU`` is above
every soft tissue, contrast-filled vessel and a sharp kernel's overshoot at the skin (a few
hundred HU), so a dense voxel away from bone is an object. "On or outside the skin" is a dense
voxel with outside air among its ~12 mm surroundings: a block of air that no body block encloses
along its row and its column (a lung is enclosed; the air around the body is not). Neither counts
within ``EDGE_BLOCKS`` of the image's edge in-plane: there a sharp kernel's cortex, cut by the
field of view, meets the reconstruction's fill, which reads as air (real CPTAC chest inliers held
up to ~1100 mm³ of it).

As objects: the same voxels, joined where they touch or lie within a slice spacing of each other
in neighbouring planes, give the longest object's length. A cable or a lead runs for tens of
centimetres (a thin wire at 2–5 mm slices is a dot per plane that moves a few pixels between
planes, hence the in-plane reach). Among real inliers the dense objects away from bone are a sharp
kernel's overshoot, a clip, or electrodes the patient wore: a few centimetres.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

METAL_HU = 2000.0
"""Voxels at or above this are metal-dense (cortical bone peaks near 1500–1900 HU outside a
sharp kernel's overshoot)."""
BONE_HU = (200.0, 1500.0)
"""HU range counted as bone around a dense voxel."""
BLOCK_MM = 4.0
"""Edge of the coarse blocks the bone share is taken in; their 3×3×3 neighbourhood (~12 mm)
is a dense voxel's surroundings."""
SAMPLE_MM = 2.0
"""The shares are read from every voxel about this far apart, the nearest whole step (a share
needs no fine grid; on a 512×512 slice at 0.56 mm reading every voxel took most of the measure's
time, and at 1.07 mm a step rounded down to 1 read every voxel: 0.65 s of a 1.05 s ingest)."""
MAX_BONE_SHARE = 0.05
"""A dense voxel whose surroundings hold less bone than this share lies away from bone."""
DENSE_HU = 1000.0
"""Voxels at or above this, away from bone, are a dense object (partial-volumed metal included)."""
AIR_HU = -900.0
"""Below this a voxel is air (outside air reads −1000 HU with a few tens of HU of noise)."""
BODY_HU = -500.0
"""Above this a voxel is body (fat, soft tissue, bone; lung parenchyma is below it)."""
AIR_BLOCK_SHARE = 0.9
"""A block with at least this share of air voxels is air."""
BODY_BLOCK_SHARE = 0.5
"""A block with at least this share of body voxels is body."""
EDGE_BLOCKS = 2
"""Blocks (~8 mm) at each in-plane edge of the image where no dense object is counted."""


@dataclass(frozen=True)
class NativeDensity:
    """What ingest measures on a series' acquired grid (mm³, and one length in mm).

    Attributes:
        metal_mm3: voxels ≥ ``METAL_HU`` away from bone (``native_metal_mm3``).
        skin_object_mm3: voxels ≥ ``DENSE_HU`` away from bone with outside air within ~12 mm:
            objects on or outside the skin (electrodes, leads, cables).
        inner_object_mm3: voxels ≥ ``DENSE_HU`` away from bone and from outside air: small
            dense objects inside the body (a valve ring, a clip, a foreign body).
        longest_object_mm: the longest side (mm, not mm³) of the box around the longest object
            among the voxels of the two above (``_longest_object_mm``): a cable or a lead runs
            for tens of centimetres, anything else dense away from bone in a real scan for a few.
    """

    metal_mm3: float
    skin_object_mm3: float
    inner_object_mm3: float
    longest_object_mm: float = 0.0


def native_metal_mm3(hu: np.ndarray, spacing_zyx_mm: tuple[float, float, float]) -> float:
    """mm³ of voxels at or above ``METAL_HU`` whose ~12 mm surroundings hold less than
    ``MAX_BONE_SHARE`` bone (``BONE_HU``), on the volume's own grid (Z, Y, X)."""
    return native_density(hu, spacing_zyx_mm).metal_mm3


def native_density(hu: np.ndarray, spacing_zyx_mm: tuple[float, float, float]) -> NativeDensity:
    """Metal away from bone, and dense objects away from bone on or outside the skin and inside
    the body, on the volume's own grid (Z, Y, X); one pass over its voxels."""
    hu = np.asarray(hu)
    dense = np.flatnonzero(hu >= _level(hu, DENSE_HU))
    if dense.size == 0:
        return NativeDensity(0.0, 0.0, 0.0)
    stride = [max(1, round(SAMPLE_MM / s)) for s in spacing_zyx_mm]
    block = [max(1, round(BLOCK_MM / (s * k))) for s, k in zip(spacing_zyx_mm, stride, strict=True)]
    sampled = np.ascontiguousarray(hu[:: stride[0], :: stride[1], :: stride[2]])
    low, high = _level(hu, BONE_HU[0]), _level(hu, BONE_HU[1])
    bone = _block_share((sampled >= low) & (sampled < high), block)
    index = tuple(np.minimum(axis // (k * step), n - 1) for axis, k, step, n in
                  zip(np.unravel_index(dense, hu.shape), block, stride, bone.shape, strict=True))
    cells, of_voxel = _distinct(np.ravel_multi_index(index, bone.shape), bone.size)
    cell = np.unravel_index(cells, bone.shape)  # the blocks that hold a dense voxel, each once
    cell_away = _neighbourhood_mean(bone, cell) < MAX_BONE_SHARE
    if not cell_away.any():  # most smooth kernels' scans: no need to find the outside air
        return NativeDensity(0.0, 0.0, 0.0)
    cell_skin = np.zeros(cells.size, dtype=bool)
    cell_skin[cell_away] = _by_outside_air(sampled, block, tuple(i[cell_away] for i in cell))
    cell_in_field = _inside_edges(cell[1], bone.shape[1]) & _inside_edges(cell[2], bone.shape[2])
    away, skin, in_field = cell_away[of_voxel], cell_skin[of_voxel], cell_in_field[of_voxel]
    voxel = float(np.prod(spacing_zyx_mm))
    return NativeDensity(
        metal_mm3=float(np.count_nonzero(away & (hu.flat[dense] >= _level(hu, METAL_HU)))) * voxel,
        skin_object_mm3=float(np.count_nonzero(away & in_field & skin)) * voxel,
        inner_object_mm3=float(np.count_nonzero(away & in_field & ~skin)) * voxel,
        longest_object_mm=_longest_object_mm(hu.shape, dense[away & in_field], spacing_zyx_mm),
    )


def _longest_object_mm(shape: tuple[int, ...], flat_index: np.ndarray,
                       spacing_zyx_mm: tuple[float, float, float]) -> float:
    """The longest side (mm) of the box around the longest object made of the voxels at
    ``flat_index`` in a volume of ``shape``. Voxels are one object where they touch or, in the
    same or neighbouring planes, lie within about a slice spacing of each other in-plane: a thin
    wire that runs at up to 45° to the slices is a dot per plane, a few pixels apart from one
    plane to the next."""
    if flat_index.size == 0:
        return 0.0
    where = np.stack(np.unravel_index(flat_index, shape))
    local = where - where.min(axis=1)[:, None]
    # in-plane cells of half a slice spacing: voxels in the same or neighbouring cells of
    # neighbouring planes are joined (within about a slice spacing)
    cell = np.array([1, *(max(1, -(-round(spacing_zyx_mm[0] / s) // 2)) for s in spacing_zyx_mm[1:])])
    label = _connected_cells(local // cell[:, None])
    n = int(label.max()) + 1
    spacing = np.asarray(spacing_zyx_mm, dtype=np.float64)
    sides = np.zeros((n, 3))
    for axis in range(3):
        first = np.full(n, np.iinfo(np.int64).max)
        last = np.full(n, -1)
        np.minimum.at(first, label, local[axis])
        np.maximum.at(last, label, local[axis])
        sides[:, axis] = np.where(last >= 0, (last - first + 1) * spacing[axis], 0.0)
    return float(sides.max())


def _connected_cells(cells: np.ndarray) -> np.ndarray:
    """(N,) component label of each of the (3, N) integer cell coordinates, cells joined to
    their 26 neighbours (repeated cells share a label). Hooks each pair of neighbours' roots to
    the smaller one and jumps pointers until no pair differs: a few rounds over the occupied
    cells only (``scipy.ndimage.label`` or SimpleITK would label the whole box, and loading
    either cost ingest more than the measure)."""
    extent = cells.max(axis=1) + 3  # a margin of one cell each side: neighbours never wrap
    keys = np.ravel_multi_index(tuple(cells + 1), tuple(extent))
    unique, of_cell = np.unique(keys, return_inverse=True)
    coords = np.stack(np.unravel_index(unique, tuple(extent)))
    pairs = []
    for offset in np.ndindex(3, 3, 3):
        step = np.array(offset) - 1
        if tuple(step) <= (0, 0, 0):  # each neighbour pair once
            continue
        neighbour = np.ravel_multi_index(tuple(coords + step[:, None]), tuple(extent))
        at = np.minimum(np.searchsorted(unique, neighbour), unique.size - 1)
        found = unique[at] == neighbour
        pairs.append(np.stack([np.flatnonzero(found), at[found]]))
    a, b = np.concatenate([np.empty((2, 0), dtype=np.int64), *pairs], axis=1)
    parent = np.arange(unique.size)
    while True:
        root_a, root_b = parent[a], parent[b]
        differ = root_a != root_b
        if not differ.any():
            break
        np.minimum.at(parent, np.maximum(root_a, root_b)[differ], np.minimum(root_a, root_b)[differ])
        while not np.array_equal(parent[parent], parent):
            parent = parent[parent]
    return np.unique(parent, return_inverse=True)[1][of_cell]


def _by_outside_air(sampled: np.ndarray, block: list[int], index: tuple[np.ndarray, ...]) -> np.ndarray:
    """Whether outside air lies in the 3×3×3 neighbourhood of each block at ``index``; read only
    in the slab of block planes that holds them."""
    first = max(int(index[0].min()) - 1, 0)
    slab = sampled[first * block[0]: (int(index[0].max()) + 2) * block[0]]
    air, body = _level(slab, AIR_HU), _level(slab, BODY_HU)
    outside_air = (_block_share(slab < air, block) >= AIR_BLOCK_SHARE) & ~_enclosed(
        _block_share(slab > body, block) >= BODY_BLOCK_SHARE)
    return _neighbourhood_mean(outside_air, (index[0] - first, index[1], index[2])) > 0


def _level(hu: np.ndarray, level: float) -> np.generic | float:
    """``level`` in ``hu``'s own type where it is an integer type that holds it exactly, so that
    comparing compares int16 with int16 (against a float level every voxel was cast to
    float64: twice the time); otherwise ``level`` itself."""
    if np.issubdtype(hu.dtype, np.integer) and float(level).is_integer():
        limits = np.iinfo(hu.dtype)
        if limits.min <= level <= limits.max:
            return hu.dtype.type(level)
    return level


def _distinct(flat: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(flat, return_inverse=True)`` for indices into ``size`` cells: marked in a
    table of the cells instead of sorted (a sort of ~100,000 dense voxels took ~7 ms)."""
    present = np.zeros(size, dtype=bool)
    present[flat] = True
    cells = np.flatnonzero(present)
    rank = np.empty(size, dtype=np.intp)
    rank[cells] = np.arange(cells.size)
    return cells, rank[flat]


def _inside_edges(block_index: np.ndarray, n_blocks: int) -> np.ndarray:
    """Whether each block index lies at least ``EDGE_BLOCKS`` from both ends of its axis."""
    return (block_index >= EDGE_BLOCKS) & (block_index < n_blocks - EDGE_BLOCKS)


def _block_share(mask: np.ndarray, block: list[int]) -> np.ndarray:
    """Share of ``mask`` voxels in each coarse block (a partial block at an axis' end counts its
    missing voxels as outside the mask)."""
    count = np.zeros([-(-n // k) for n, k in zip(mask.shape, block, strict=True)], dtype=np.uint16)
    for offset in np.ndindex(*block):  # a sum of strided views: far cheaper than a 6-D mean
        part = mask[offset[0]:: block[0], offset[1]:: block[1], offset[2]:: block[2]]
        count[: part.shape[0], : part.shape[1], : part.shape[2]] += part
    return count.astype(np.float32) / np.prod(block)


def _enclosed(body: np.ndarray) -> np.ndarray:
    """Blocks (Z, Y, X) between the first and last body block of their row (along x) and of
    their column (along y): the body and what it surrounds in its plane, lungs included."""
    n_y, n_x = body.shape[1:]
    x = np.arange(n_x)[None, None, :]
    y = np.arange(n_y)[None, :, None]
    in_row = body.any(axis=2, keepdims=True)
    in_column = body.any(axis=1, keepdims=True)
    first_x = np.where(in_row, body.argmax(axis=2)[..., None], n_x)
    last_x = n_x - 1 - body[:, :, ::-1].argmax(axis=2)[..., None]
    first_y = np.where(in_column, body.argmax(axis=1)[:, None, :], n_y)
    last_y = n_y - 1 - body[:, ::-1, :].argmax(axis=1)[:, None, :]
    return (x >= first_x) & (x <= last_x) & (y >= first_y) & (y <= last_y)


def _neighbourhood_mean(cells: np.ndarray, index: tuple[np.ndarray, ...]) -> np.ndarray:
    """The mean over the 3×3×3 neighbourhood of each cell at ``index``, edges repeated
    (``scipy.ndimage``'s ``uniform_filter(size=3, mode="nearest")`` read at those cells: its
    import alone cost a one-series ingest ~0.18 s, and filtering every block of a 1 mm grid, two
    million, took 0.1 s where a few thousand dense voxels need it)."""
    steps = [int(np.prod(cells.shape[axis + 1:])) for axis in range(3)]
    flat = cells.ravel()
    shifted = [[np.clip(i + d - 1, 0, n - 1) * step for d in range(3)]  # per axis, clipped once
               for i, n, step in zip(index, cells.shape, steps, strict=True)]
    total = np.zeros(len(index[0]))
    for dz, dy, dx in np.ndindex(3, 3, 3):
        total += flat[shifted[0][dz] + shifted[1][dy] + shifted[2][dx]]
    return total / 27
