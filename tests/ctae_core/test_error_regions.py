"""The anomaly map's peak inside the patient and in the body's outer shell."""

from __future__ import annotations

import numpy as np
import pytest

from ctae_core.error_regions import patient_interior, region_peaks

SPACING = 3.0


def _patient() -> np.ndarray:
    """(8, 64, 64) HU: a 60 mm-radius body of soft tissue with a lung inside, a lead on the
    skin, a couch below, air around."""
    hu = np.full((8, 64, 64), -1000, dtype=np.int16)
    y, x = np.mgrid[:64, :64]
    r_mm = np.hypot(y - 30, x - 32) * SPACING
    hu[:, r_mm <= 60] = 40
    hu[:, (r_mm <= 25)] = -850  # lung: inside the outline, a hole the fill closes
    hu[:, 30, 53] = 2500  # a lead on the skin (63 mm from the centre)
    hu[:, 56:58, 8:56] = 200  # the couch: a part of its own
    return hu


def test_the_interior_lies_deeper_than_the_margin_inside_the_patients_outline():
    interior = patient_interior(_patient(), SPACING)
    assert interior[3, 30, 32] and interior[3, 30, 40]  # the lung (filled) and 36 mm deep
    assert not interior[3, 30, 50]  # 54 mm from the centre: 6 mm deep, in the shell
    assert not patient_interior(_patient(), SPACING, margin_mm=40.0)[3, 30, 40]  # 36 mm < 40
    assert not interior[3, 30, 53]  # the lead on the skin
    assert not interior[3, 56, 30]  # the couch
    assert not interior[3, 2, 2]  # air
    assert interior.any(axis=(1, 2)).all()  # every slice has a patient


def test_region_peaks_are_the_maps_peak_in_each_region_away_from_the_cut_faces():
    hu = _patient()
    amap = np.zeros(hu.shape, dtype=np.float32)
    amap[4, 30, 53] = 1500.0  # the lead: shell
    amap[4, 30, 36] = 900.0  # an object 48 mm deep: interior
    amap[0, 30, 30] = 3000.0  # on the first slice, the scan's cut face: never a peak
    amap[7, 30, 53] = 3000.0  # on the last
    assert region_peaks(amap, hu, SPACING) == (900.0, 1500.0)
    amap[4, 30, 36] = 0.0
    assert region_peaks(amap, hu, SPACING) == (0.0, 1500.0)


def test_a_slice_without_a_patient_has_no_interior_and_shapes_must_agree():
    hu = _patient()
    hu[2] = -1000
    assert not patient_interior(hu, SPACING)[2].any()
    with pytest.raises(ValueError, match="differ in shape"):
        region_peaks(np.zeros((8, 64, 63), np.float32), hu, SPACING)
    with pytest.raises(ValueError, match="spacing"):
        patient_interior(hu, 0.0)
