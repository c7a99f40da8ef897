"""The names of the kinds of evidence the outlier score measures and combines
(``ctae_core.outlier_score`` computes them): names only, so that ``ctae_core.thresholds`` counts
the scored kinds at CLI start-up without importing the numeric code."""

from __future__ import annotations

EVIDENCE = (
    "mse_m_z", "latent_z", "histogram_z", "tissue_z",
    "contrast_z", "shape_z", "fov_z", "noise_z", "streak_z", "integrity_z", "ring_z", "metal_z",
    "skin_object_z", "inner_object_z", "long_object_z", "local_error_z",
)
"""Every kind of evidence measured and stored (``scores`` columns)."""
UNSCORED_EVIDENCE = ("mse_m_z",)
"""Measured, stored and shown, not scored (README "Detection quality on real anatomy"). MSE_m for
its size: with the protocol's 12 epochs it ranked real anatomy's anomalies at chance (0.45–0.51)
while 5–7 % of real inliers passed its p < 0.001 (the TotalSegmentator abdomen's short slab,
reconstructed worse than its size predicts): every inlier flagged at T on seeds 101 and 102 was
flagged by it; leaving it out raised the outlier score on all three development seeds. Streaks
were unscored while they were searched in the air around the body (the straight couch and body
edges made them heavy-tailed among real inliers); searched through the body's soft tissue they
are scored. The local error was unscored until stop 37: with the |error| smoothed into the map
and 3 epochs it had ranked the anomalies at chance (AUROC 0.53) and lowered the outlier score
0.78 → 0.73; with the map above its surroundings (stop 32) and the default U-Net's 5 epochs,
scoring it raised recall at T on held-out real-anatomy seeds without more inliers flagged
(docs/reconstruction-history.md, "Stop 37")."""
SCORED_EVIDENCE = tuple(name for name in EVIDENCE if name not in UNSCORED_EVIDENCE)
"""The kinds the outlier score combines."""
