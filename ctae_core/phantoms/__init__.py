"""Synthetic CT phantoms: the demo cohort's chests with planted outliers (``render_scan``), and
the small test torso (``torso``) that tests, benchmarks and synthetic catalogs store.

Pure functions: parameters → HU array (Z, Y, X) + spacing + origin. No file access; the
``ctae demo-data`` job writes the results as DICOM series.
"""

from __future__ import annotations

from ctae_core.phantoms.anatomy import SubjectParams
from ctae_core.phantoms.cohort import (
    SIZES,
    ScanSpec,
    draw_geometry,
    draw_subject,
    plan_cohort,
    render_spec,
)
from ctae_core.phantoms.outliers import INLIER, METAL_TYPES, OUTLIER_TYPES, outlier_type
from ctae_core.phantoms.render import Phantom, ScanGeometry, WriteEffects
from ctae_core.phantoms.scan import render_scan
from ctae_core.phantoms.tissues import TISSUE_HU_RANGES, Tissue
from ctae_core.phantoms.torso import torso

__all__ = [
    "INLIER",
    "METAL_TYPES",
    "OUTLIER_TYPES",
    "SIZES",
    "TISSUE_HU_RANGES",
    "Phantom",
    "ScanGeometry",
    "ScanSpec",
    "SubjectParams",
    "Tissue",
    "WriteEffects",
    "draw_geometry",
    "draw_subject",
    "outlier_type",
    "plan_cohort",
    "render_scan",
    "render_spec",
    "torso",
]
