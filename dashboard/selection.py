"""Turn a Plotly selection event (browser or AppTest) into the selected scan ids."""

from __future__ import annotations

from typing import Any


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
