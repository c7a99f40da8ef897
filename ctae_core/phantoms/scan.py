"""Render one scan: subject + geometry + planted outlier → :class:`Phantom`."""

from __future__ import annotations

import numpy as np

from ctae_core.phantoms.anatomy import SubjectParams
from ctae_core.phantoms.outliers import INLIER, outlier_type
from ctae_core.phantoms.render import (
    Phantom,
    ScanGeometry,
    Scene,
    WriteEffects,
    add_correlated_noise,
    labels_to_hu,
    render_labels,
    to_int16_hu,
)


def render_scan(
    params: SubjectParams,
    geometry: ScanGeometry,
    truth: str = INLIER,
    strength: float = 0.0,
    seed: int = 0,
) -> Phantom:
    """A scan of ``params`` as ``geometry`` reconstructs it, with outlier ``truth`` planted.

    Args:
        params: The subject.
        geometry: Field of view, spacing and z coverage.
        truth: ``inlier`` or a name in :data:`~ctae_core.phantoms.outliers.OUTLIER_TYPES`.
        strength: 0 (subtle) … 1 (obvious); ignored for inliers.
        seed: Seed of the noise and of the outlier's random placement.

    Returns:
        The phantom: int16 HU (Z, Y, X), tissue labels, spacing, origin and write effects.

    Raises:
        ValueError: ``truth`` is not a known type or ``strength`` is outside [0, 1].
    """
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be in [0, 1], not {strength}")
    kind = outlier_type(truth)
    rng = np.random.default_rng([seed, 7])
    if kind is not None and kind.adjust is not None:
        params, geometry = kind.adjust(params, geometry, strength, rng)
    grid = geometry.grid(params)
    labels = render_labels(params, grid)
    scene = Scene(params, geometry, grid, labels, rng, strength, labels_to_hu(labels, params))
    if kind is not None and kind.paint is not None:
        kind.paint(scene)
    add_correlated_noise(scene.hu, params.noise_sd_hu, np.random.default_rng([seed, 11]))
    if kind is not None and kind.finish is not None:
        kind.finish(scene)
    effects = kind.effects(scene) if kind is not None and kind.effects else WriteEffects()
    return Phantom(
        hu=to_int16_hu(scene.hu),
        labels=scene.labels,
        spacing_zyx_mm=grid.spacing_zyx_mm,
        origin_xyz_mm=grid.origin_xyz_mm,
        effects=effects,
    )
