"""The review pane drawn in the browser (``review_pane/``, a Streamlit component of our own).

The browser holds the reviewer's whole queue (ids, reads, suggested tags) and fetches the
planes of the next scans ahead over HTTP, so a key press shows the next scan at once, with no
round trip. The label travels as the component's value: every label the browser has not seen
acknowledged, each with an id of its own. The page writes them to the review journal (a label
already there is not written twice) and only then lists them as acknowledged, so "Saved" still
means durable.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit.components.v1 as components

from ctae_core.io.volume_store import VOLUME_UNREADABLE
from dashboard import component_files, data, slices
from dashboard.render import ViewSettings, render_views
from dashboard.suggest import suggested_causes

PLANES_CACHE = component_files.served_folder("review")
KEEP_FILES = 3000  # plane images kept in the cache (3 per scan; ~10 KB each at 128²)
AHEAD = 4  # scans after the shown one whose planes the browser fetches ahead

_COMPONENT = components.declare_component(
    "ctae_review_pane", path=str(Path(__file__).with_name("review_pane"))
)
_FILES_BASE = component_files.serve(PLANES_CACHE, "ctae_review_planes")
_written = 0


def _planes_name(scan: Mapping[str, Any], err: str | None) -> str | None:
    """The file stem of the scan's middle planes: named by what they are drawn from, so a name
    is known before the file is written, and a changed volume gets a new name."""
    try:
        stamp = os.stat(scan["volume_path"]).st_mtime_ns
        if err:
            stamp = (stamp, os.stat(err).st_mtime_ns)
    except (OSError, TypeError):
        return None
    what = f"{scan['volume_path']}|{err}|{stamp}|{scan['spacing_mm']}|{ViewSettings()}"
    return hashlib.sha1(what.encode()).hexdigest()[:24]


def plane_pngs(volume_path: str, error_path: str | None, spacing_mm: float,
               z: int | None = None) -> list[bytes]:
    """The scan's planes (``slices.PLANES`` order) through (z, middle row, middle column) as
    PNG bytes (z: the middle slice when None), with the |error| overlay when ``error_path``."""
    volume = data.volume(volume_path)
    error = data.volume(error_path) if error_path else None
    indices = (volume.shape[0] // 2 if z is None else z, volume.shape[1] // 2, volume.shape[2] // 2)
    images = render_views(volume, indices, ViewSettings(), error=error,
                          scan_spacing_mm=spacing_mm, run_spacing_mm=spacing_mm)
    return [images[plane].original for plane in slices.PLANES]


def _write_planes(scan: Mapping[str, Any], err: str | None, stem: str) -> None:
    """Draw the three planes through the volume's middle into the cache (atomically)."""
    global _written
    pngs = plane_pngs(scan["volume_path"], err, float(scan["spacing_mm"]))
    for plane, png in zip(slices.PLANES, pngs, strict=True):
        component_files.write_atomically(PLANES_CACHE / f"{stem}-{plane}.png", png)
    _written += 1
    if _written % 200 == 0:
        component_files.keep_newest(PLANES_CACHE, "*.png", KEEP_FILES)


def error_path(scan: Mapping[str, Any], show_model: bool) -> str | None:
    """The scan's |error| volume when the session shows the model and it exists."""
    path = scan.get("error_path")
    return path if show_model and isinstance(path, str) and Path(path).is_file() else None


def planes_stem(scan: Mapping[str, Any], show_model: bool, draw: bool) -> str | None:
    """The file stem of the scan's three plane images, which the browser fetches as
    ``{stem}-{plane}.png`` (``draw``: write them now when missing); None when its volume is
    missing from the store."""
    err = error_path(scan, show_model)
    stem = _planes_name(scan, err)
    if stem is None:
        return None
    if draw and not (PLANES_CACHE / f"{stem}-{slices.PLANES[-1]}.png").exists():
        _write_planes(scan, err, stem)
    return stem


def draw_ahead(scans: Sequence[Mapping[str, Any]], show_model: bool) -> None:
    """Write the planes of the scans the browser will fetch next, when missing."""
    for scan in scans:
        try:
            planes_stem(scan, show_model, draw=True)
        except VOLUME_UNREADABLE:
            continue


def scan_items(scans: pd.DataFrame, order: Sequence[str],
               show_model: bool) -> dict[str, dict[str, Any]]:
    """What the browser shows of each scan of the queue that does not change with reads: the
    planes (see :func:`planes_stem`), suggested tags and the model's verdict (when shown)."""
    items = {}
    for scan in scans.loc[list(order)].to_dict("records"):  # one conversion, not a row each
        item: dict[str, Any] = {"id": scan["scan_id"],
                                "planes": planes_stem(scan, show_model, draw=False),
                                "suggested": suggested_causes(scan) if show_model else []}
        if show_model:
            item["model"] = (f"Model: {'flagged' if scan['is_outlier'] else 'not flagged'}"
                             f" · score {scan['score']:.4g}")
        items[scan["scan_id"]] = item
    return items


def queue_items(scan_info: Mapping[str, Mapping[str, Any]], order: Sequence[str],
                reads: Mapping[str, Mapping], others: Mapping[str, str]) -> list[dict[str, Any]]:
    """What the browser shows of each scan of the queue: :func:`scan_items` with the reviewer's
    read and others' reads (when shown)."""
    return [{**scan_info[scan_id],
             "read": None if (read := reads.get(scan_id)) is None else {
                 "verdict": read["verdict"], "causes": list(read["causes"]),
                 "note": read["note"] if isinstance(read["note"], str) else None},
             "others": others.get(scan_id, "")}
            for scan_id in order]


def review_pane(*, key: str, session_id: str, reviewer: str, items: list[dict[str, Any]],
                start: int, acks: Mapping[str, str], tags: Sequence[str],
                verdict_keys: Mapping[str, str]) -> Any:
    """Draw the pane; returns its value: ``{"pending": [label, …], "at": scan_id}`` (a label:
    ``{"id", "scan", "verdict", "causes", "note"}``), ``{"failed": why}``, or None."""
    return _COMPONENT(session_id=session_id, reviewer=reviewer, items=items, start=start,
                      acks=dict(acks), tags=list(tags), verdict_keys=dict(verdict_keys),
                      ahead=AHEAD, files_base=_FILES_BASE, key=key, default=None)
