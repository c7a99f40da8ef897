"""Cause tags suggested from a scan's strongest evidence."""

from __future__ import annotations

from dashboard.suggest import suggested_causes


def test_suggestions_follow_strong_evidence_strongest_first():
    assert suggested_causes({"shape_z": 4.0, "noise_z": 6.0, "integrity_z": 1.0}) == [
        "artefact or noise", "field of view"]
    assert suggested_causes({"streak_z": 8.0, "hu_max": 3071.0}) == ["metal implant"]
    assert suggested_causes({"streak_z": 8.0, "hu_max": 900.0}) == ["artefact or noise"]
    assert suggested_causes({"integrity_z": 12.0, "contrast_z": None}) == ["broken series"]
    assert suggested_causes({"mse_m_z": 9.0, "latent_z": float("nan")}) == []
