"""Turn a chart's selection event (Plotly or ECharts, browser or AppTest) into scan ids."""

from __future__ import annotations

from typing import Any

import numpy as np


def selected_scan_ids(event: Any) -> list[str]:
    """Scan ids of the selected points; each point's ``customdata[0]`` is its scan_id.

    Works with Streamlit's event object and with the plain dict AppTest hands back.
    """
    if not event:
        return []
    selection = event["selection"] if "selection" in event else {}
    ids: list[str] = []
    for point in selection.get("points", []) or []:
        custom = point.get("customdata")
        if isinstance(custom, list | tuple) and custom:
            ids.append(str(custom[0]))
        elif isinstance(custom, str):
            ids.append(custom)
    return list(dict.fromkeys(ids))


def picked_scan_ids(event: Any, scan_ids: list[np.ndarray | None]) -> list[str]:
    """Scan ids of the items an ECharts selection event picks (clicked or brushed), where
    ``scan_ids[k]`` holds the scan id of each item of series ``k`` (None: not scans)."""
    selection = (event or {}).get("selection") or {}
    ids: list[str] = []
    for group in selection.get("selected") or []:
        k = group.get("series_index")
        series = scan_ids[k] if isinstance(k, int) and 0 <= k < len(scan_ids) else None
        if series is None:
            continue
        ids += [str(series[i]) for i in group.get("data_indices") or [] if 0 <= i < len(series)]
    return list(dict.fromkeys(ids))
