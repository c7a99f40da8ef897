"""The interactive scan viewer: a Canvas 2D slice viewer of our own (``slice_viewer/``, served
as one page) as a Streamlit component. Scrolling, window/level, zoom/pan, the three linked
planes and the overlays run in the browser, which fetches the scan's int16 slabs over HTTP from
the viewer cache (``scan_volumes``)."""

from __future__ import annotations

import hashlib
from dataclasses import asdict
from pathlib import Path
from typing import Any

import streamlit.components.v1 as components

from dashboard import component_files
from dashboard.render import ViewSettings
from dashboard.scan_volumes import VIEWER_CACHE, ViewerScan
from dashboard.slices import WINDOW_PRESETS


def _one_page(source: Path) -> Path:
    """The viewer's index.html with its main.js inside, in a served folder named by their
    content: Streamlit serves a component's files without a cache lifetime, so the browser
    fetched main.js again at every open, one more request before the viewer could ask for its
    arguments."""
    script = (source / "main.js").read_text()
    if "</script" in script:
        raise ValueError(f"{source / 'main.js'} contains '</script': it cannot be inlined")
    page = (source / "index.html").read_text().replace(
        '<script src="main.js"></script>', f"<script>\n{script}</script>")
    pages = component_files.served_folder("viewer-page")
    folder = pages / hashlib.sha1(page.encode()).hexdigest()[:16]
    folder.mkdir(mode=0o700, exist_ok=True)
    if not (folder / "index.html").exists():
        component_files.write_atomically(folder / "index.html", page.encode())
    component_files.mark_used(folder)
    component_files.keep_newest(pages, "*", 8, spare=folder.name)  # other builds' servers
    return folder


_COMPONENT = components.declare_component(
    "ctae_scan_viewer", path=str(_one_page(Path(__file__).with_name("slice_viewer")))
)
_FILES_BASE = component_files.serve(VIEWER_CACHE, "ctae_viewer_files")


def scan_viewer(scan: ViewerScan, scan_key: str, height: int = 440) -> Any:
    """Draw the viewer; returns ``{"failed": why}`` when the browser could not, else None."""
    view = ViewSettings()
    return _COMPONENT(
        files_base=_FILES_BASE,
        scan=asdict(scan),
        window_hu=[view.width_hu, view.level_hu],
        window_presets=WINDOW_PRESETS,
        error_opacity=view.opacity,
        error_max_hu=view.error_max_hu,
        source_note="as acquired" if scan.native else "stored volume",
        height=height,
        scan_key=f"{scan_key}:{scan.folder}",
        key="scan_viewer",  # one iframe for every scan: the page keeps its state between scans
        default=None,
    )
