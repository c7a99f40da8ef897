"""The real-anatomy cohort: real CT volumes re-posed, re-sized, re-cropped and re-noised as
inliers, with anomalies inserted by code of its own (it shares no function or constant with the
evidence code in ``ctae_core/outlier_score.py``, ``acquisition.py``, ``stats.py``), and a voxel
mask of every local anomaly. Numeric only: ``jobs/demo_data_real.py`` reads the bases and
writes the series."""

from ctae_core.real_cohort.anomalies import ANOMALY_TYPES, LOCAL_TYPES, Inserted, insert_anomaly
from ctae_core.real_cohort.plan import INLIER, BaseVolume, RealScanSpec, plan_real_cohort
from ctae_core.real_cohort.pose import Rendered, body_region, render_variant

__all__ = [
    "ANOMALY_TYPES", "INLIER", "LOCAL_TYPES", "BaseVolume", "Inserted", "RealScanSpec", "Rendered",
    "body_region", "insert_anomaly", "plan_real_cohort", "render_variant",
]
