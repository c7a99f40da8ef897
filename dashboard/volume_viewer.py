"""The interactive scan viewer: NiiVue (vendored in ``niivue_component/``) as a Streamlit
component. Scrolling, window/level, zoom/pan and the three linked planes run in the browser,
which fetches the scan's NIfTI files over HTTP from the viewer cache (``scan_volumes``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import streamlit.components.v1 as components

from dashboard.render import ViewSettings
from dashboard.scan_volumes import VIEWER_CACHE, ViewerScan

_COMPONENT = components.declare_component(
    "ctae_scan_viewer", path=str(Path(__file__).with_name("niivue_component"))
)
VIEWER_CACHE.mkdir(mode=0o700, parents=True, exist_ok=True)
# A second component whose "frontend" is the cache folder: Streamlit serves its files at
# /component/<name>/<file>, next to the viewer's own, so the browser fetches (and caches) them.
_FILES = components.declare_component("ctae_viewer_files", path=str(VIEWER_CACHE))
OVERLAY_STYLE = {  # NiiVue colormap per overlay; |error| below 20 % of full colour is clear
    "reconstruction": {"colormap": "gray"},
    "error": {"colormap": "warm"},
}


def scan_viewer(scan: ViewerScan, view: ViewSettings, scan_key: str, height: int = 440) -> Any:
    """Draw the viewer; returns ``{"webgl": False}`` when the browser cannot, else None."""
    overlays = []
    for role, name in scan.overlays:
        meta: dict[str, Any] = {"role": role, "file": name, **OVERLAY_STYLE[role], "opacity": 0.0}
        if role == "error":
            meta.update(cal_min=0.2 * view.error_max_hu, cal_max=view.error_max_hu,
                        opacity=view.opacity)
        overlays.append(meta)
    return _COMPONENT(
        files_base=f"../{_FILES.name}/",
        volume=scan.volume,
        overlays=overlays,
        window_hu=[view.width_hu, view.level_hu],
        error_opacity=view.opacity,
        crosshair_mm=scan.crosshair_mm,
        source_note="as acquired" if scan.native else "stored volume",
        height=height,
        scan_key=f"{scan_key}:{scan.volume}",
        key="scan_viewer",  # one iframe for every scan: NiiVue is loaded once per page
        default=None,
    )
