"""The ECharts options' numbers: rounded for the tooltips and the wire, nothing lost."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from dashboard import echarts


def test_rounded_keeps_four_significant_digits_and_prints_them_as_decimals():
    values = np.array([0.123456, 123456.0, -2.5e-7, 0.0, 7.0, 9.99951, np.nan, np.inf, 1e300])
    assert echarts.rounded(values) == [
        0.1235, 123500.0, -2.5e-07, 0.0, 7.0, 10.0, None, None, 1e300
    ]
    assert json.dumps(echarts.rounded(np.array([0.28741234, 1.0 / 3.0]))) == "[0.2874, 0.3333]"


def test_log_axis_leaves_out_scores_it_cannot_show_and_names_itself():
    scans = pd.DataFrame({
        "scan_id": ["a", "b", "c"], "pixel_count": [10, 20, 30], "mse_m": [0.5, 0.0, 2.0],
        "is_outlier": [False, False, True],
    })
    linear = echarts.score_scatter(scans, "pixel_count", "mse_m", "flag", 1.0)
    log = echarts.score_scatter(scans, "pixel_count", "mse_m", "flag", 1.0, log_score=True)
    assert sum(len(s["data"]) for s in linear.option["series"]) == 3
    assert sum(len(s["data"]) for s in log.option["series"]) == 2  # 0.0 has no place on a log axis
    assert [list(ids) for ids in log.scan_ids] == [["c"], ["a"]]  # flagged, not flagged
    assert "log score axis" in log.alt and "log" not in linear.alt
