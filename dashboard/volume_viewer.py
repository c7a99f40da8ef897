"""The interactive scan viewer: NiiVue (vendored in ``niivue_component/``) as a Streamlit
component. Scrolling, window/level, zoom/pan and the three linked planes run in the browser."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import streamlit as st
import streamlit.components.v1 as components

from dashboard.render import ViewSettings
from dashboard.scan_volumes import ViewerScan

_COMPONENT = components.declare_component(
    "ctae_scan_viewer", path=str(Path(__file__).with_name("niivue_component"))
)
OVERLAY_STYLE = {  # NiiVue colormap per overlay; |error| below 20 % of full colour is clear
    "reconstruction": {"colormap": "gray"},
    "error": {"colormap": "warm"},
}


def message_budget_bytes() -> int:
    """The largest scan the server may send: its websocket limit, less room for the page."""
    return int(st.get_option("server.maxMessageSize")) * 1_000_000 * 9 // 10


def scan_viewer(scan: ViewerScan, view: ViewSettings, scan_key: str, height: int = 440) -> Any:
    """Draw the viewer; returns ``{"webgl": False}`` when the browser cannot, else None."""
    overlays = []
    for role, _ in scan.overlays:
        meta: dict[str, Any] = {"role": role, **OVERLAY_STYLE[role], "opacity": 0.0}
        if role == "error":
            meta.update(cal_min=0.2 * view.error_max_hu, cal_max=view.error_max_hu,
                        opacity=view.opacity)
        overlays.append(meta)
    return _COMPONENT(
        volume=scan.volume,
        overlays=overlays,
        **{f"overlay{i}": data for i, (_, data) in enumerate(scan.overlays)},
        window_hu=[view.width_hu, view.level_hu],
        error_opacity=view.opacity,
        crosshair_mm=scan.crosshair_mm,
        source_note="as acquired" if scan.native else "stored volume",
        height=height,
        scan_key=scan_key,
        key="scan_viewer",  # one iframe for every scan: NiiVue is loaded once per page
        default=None,
    )
