"""Tissue classes of the phantom and their Hounsfield-unit ranges.

A phantom is first a label volume (one :class:`Tissue` per voxel); each subject then draws a
mean HU per tissue inside the range below, so two subjects differ as two patients do.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np


class Tissue(IntEnum):
    """Label values of the phantom's tissue map (uint8)."""

    AIR = 0
    FAT = 1
    MUSCLE = 2
    SOFT = 3  # skin, mediastinum, discs, spinal canal, abdominal soft tissue
    LUNG = 4
    LUNG_VESSEL = 5
    MYOCARDIUM = 6
    BLOOD_LEFT = 7  # left heart chambers and aorta (arterial phase)
    BLOOD_RIGHT = 8  # right heart chambers, pulmonary artery, SVC
    CORTICAL_BONE = 9
    CANCELLOUS_BONE = 10
    AIRWAY = 11  # trachea, bronchi, bowel and stomach gas
    LIVER = 12  # liver and spleen
    KIDNEY = 13
    TABLE_SHELL = 14
    TABLE_CORE = 15
    CARTILAGE = 16
    FLUID = 17  # bladder
    METAL = 18  # planted outliers only
    FOREIGN = 19  # planted outliers only: plastic, contrast-filled tubes


TISSUE_HU_RANGES: dict[Tissue, tuple[float, float]] = {
    Tissue.AIR: (-1000.0, -1000.0),
    Tissue.FAT: (-120.0, -80.0),
    Tissue.MUSCLE: (35.0, 65.0),
    Tissue.SOFT: (25.0, 55.0),
    Tissue.LUNG: (-870.0, -820.0),
    Tissue.LUNG_VESSEL: (150.0, 350.0),
    Tissue.MYOCARDIUM: (80.0, 150.0),
    Tissue.BLOOD_LEFT: (300.0, 450.0),
    Tissue.BLOOD_RIGHT: (150.0, 450.0),
    Tissue.CORTICAL_BONE: (900.0, 1500.0),
    Tissue.CANCELLOUS_BONE: (300.0, 450.0),
    Tissue.AIRWAY: (-1000.0, -960.0),
    Tissue.LIVER: (60.0, 110.0),
    Tissue.KIDNEY: (140.0, 220.0),
    Tissue.TABLE_SHELL: (150.0, 300.0),
    Tissue.TABLE_CORE: (-900.0, -800.0),
    Tissue.CARTILAGE: (100.0, 200.0),
    Tissue.FLUID: (0.0, 15.0),
    Tissue.METAL: (6000.0, 16000.0),
    Tissue.FOREIGN: (100.0, 2500.0),
}
"""Inlier range of each tissue's mean HU (before noise and partial-volume blur)."""


def draw_tissue_hu(rng: np.random.Generator) -> tuple[float, ...]:
    """One subject's mean HU per tissue, indexed by :class:`Tissue` value.

    The left heart is drawn first; the right heart follows it with a contrast-timing lag
    (earlier bolus: right ≥ left; later: right < left), as in CCTA's arterial phase.
    """
    values = [float(rng.uniform(low, high)) for low, high in TISSUE_HU_RANGES.values()]
    left = values[Tissue.BLOOD_LEFT]
    timing = rng.uniform(-0.5, 0.15)  # fraction by which the right heart lags the left
    values[Tissue.BLOOD_RIGHT] = float(np.clip(left * (1 + timing), 150.0, 450.0))
    values[Tissue.LUNG_VESSEL] = float(
        np.clip(0.5 * (left + values[Tissue.BLOOD_RIGHT]), 150.0, 350.0)
    )
    return tuple(values)


def hu_lookup(tissue_hu: tuple[float, ...]) -> np.ndarray:
    """A (256,) float32 table mapping label → mean HU; unknown labels map to air."""
    table = np.full(256, -1000.0, dtype=np.float32)
    table[: len(tissue_hu)] = tissue_hu
    return table
