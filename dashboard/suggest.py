"""Cause tags suggested by a scan's strongest evidence, for the reviewer to confirm."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

METAL_HU = 3000.0  # the catalog's metal_voxels threshold
SUGGEST_Z = 3.0  # evidence at least this far from the reference scans suggests a cause
# evidence → cause tag (DESIGN.md's tags; contrast has none of its own, so "other")
EVIDENCE_CAUSES = {
    "integrity_z": "broken series",
    "ring_z": "artefact or noise",
    "metal_z": "metal implant",
    "skin_object_z": "cable or tube",
    "inner_object_z": "metal implant",
    "long_object_z": "cable or tube",
    "shape_z": "field of view",
    "fov_z": "field of view",
    "noise_z": "artefact or noise",
    "contrast_z": "other",
    "tissue_z": "anatomy",
}


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def suggested_causes(scan: Mapping[str, Any]) -> list[str]:
    """Cause tags for the scan's evidence with z ≥ 3, strongest first; metal when HU max ≥ 3000.

    Streaks and odd HU histograms come from metal when the scan holds metal-range HU, and are
    "artefact or noise" otherwise.
    """
    metal = (_finite(scan.get("hu_max")) or 0.0) >= METAL_HU
    strong = sorted(
        ((z, name) for name in (*EVIDENCE_CAUSES, "streak_z", "histogram_z")
         if (z := _finite(scan.get(name))) is not None and z >= SUGGEST_Z),
        reverse=True,
    )
    tags = ["metal implant"] if metal else []
    for _, name in strong:
        tag = EVIDENCE_CAUSES.get(name) or ("metal implant" if metal else "artefact or noise")
        if tag not in tags:
            tags.append(tag)
    return tags
