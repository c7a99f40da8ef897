"""Pieces of the viewer page: window controls, the plane images, scan facts."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from ctae_core.anomaly_map import hottest_regions
from ctae_core.io.volume_store import VOLUME_UNREADABLE
from dashboard import data, scan_volumes, slices, volume_viewer
from dashboard.render import ViewSettings, render_views

EVIDENCE_NAMES = {  # ctae_core.outlier_score.EVIDENCE, in words
    "mse_m_z": "reconstruction error for its size",
    "latent_z": "latent vector far from the training scans'",
    "histogram_z": "HU histogram unlike the training scans'",
    "tissue_z": "tissue composition unlike the training scans'",
    "contrast_z": "less contrast-enhanced blood than usual",
    "shape_z": "body outline unlike the training scans' (arms, cut field of view, position)",
    "fov_z": "body cut by the edge of the reconstructed field (patient beyond the scanned field)",
    "noise_z": "image noise above the usual",
    "streak_z": "straight streaks across the body",
    "integrity_z": "slices missing or repeated in the series",
    "ring_z": "a ring about the image centre (detector artefact)",
    "metal_z": "compact metal away from bone, at the acquired resolution",
    "skin_object_z": "a small dense object on or outside the skin (electrode, lead, cable)",
    "inner_object_z": "a small dense object inside the body, away from bone (valve, clip)",
    "long_object_z": "a long dense object away from bone (cable, lead, wire)",
    "local_error_z": "a local object the model did not reproduce (the anomaly map's peak inside "
                     "the patient or on its shell, whichever is rarer; the viewer opens there)",
}

FACTS = [
    "scan_id",
    "split",
    "mse",
    "mse_m",
    "mse_region",
    "score",
    "outlier_score",
    *EVIDENCE_NAMES,
    "is_outlier",
    "cluster",
    "pixel_count",
    "size_z",
    "size_y",
    "size_x",
    "spacing_mm",
    "hu_mean",
    "hu_min",
    "hu_max",
    "native_noise_hu",
    "noise_hu",
    "body_edge_mm",
    "streak_contrast",
    "local_error_hu",
    "local_error_interior_hu",
    "local_error_shell_hu",
    "local_error_interior_z",
    "local_error_shell_z",
    "manufacturer",
    "kernel",
    "series_uid",
    "source_path",
    "label",
    "causes",
]
ADMIN_ONLY_FACTS = ("series_uid", "source_path")  # the link back to the source: admins only


def window_controls() -> ViewSettings:
    """Window preset (or custom width/level), overlay opacity and |error| colour range."""
    usual = ViewSettings()
    cols = st.columns(5)
    preset = cols[0].selectbox("Window", [*slices.WINDOW_PRESETS, "custom"], key="window")
    width, level = slices.WINDOW_PRESETS.get(preset, (usual.width_hu, usual.level_hu))
    if preset == "custom":
        width = cols[1].number_input("Width (HU)", 1.0, 6000.0, usual.width_hu, 50.0, key="win_w")
        level = cols[2].number_input("Level (HU)", -1200.0, 3000.0, usual.level_hu, 10.0,
                                     key="win_l")
    opacity = cols[3].slider("Error overlay opacity", 0.0, 1.0, usual.opacity, 0.05, key="opacity")
    error_max = cols[4].slider("|error| at full colour (HU)", 50, 2000, int(usual.error_max_hu), 50,
                               key="err_max")
    return ViewSettings(float(width), float(level), float(opacity), float(error_max))


def _load(path: Any, what: str):
    if not isinstance(path, str) or not path:
        return None
    try:
        return data.volume(path)
    except VOLUME_UNREADABLE as err:
        st.warning(f"{what}: {err}")
        return None


@st.cache_resource(max_entries=16, show_spinner=False)
def _hottest_regions(error_path: str, map_mm: float, first_at: tuple[int, int, int] | None,
                     ) -> tuple[np.ndarray, tuple[int, int, int] | None]:
    """The hottest regions' union (the stored rule, ``hottest_regions``, the first around the
    stored hottest region ``first_at`` where the run has one) and the hottest one's peak
    (z, y, x), on the map's grid (None: nothing in the map)."""
    regions = hottest_regions(data.volume(error_path), map_mm, first_at=first_at)
    if not regions:
        return np.zeros(data.volume(error_path).shape, dtype=bool), None
    return np.logical_or.reduce([mask for mask, _, _ in regions]), regions[0][1]


def slice_slider(where: Any, label: str, slices_n: int, start: int, key: str) -> int:
    """A slider over ``slices_n`` slices at ``start``; a scan one voxel thin on this axis (8
    slices of 0.3 mm stored at 3 mm) has nothing to slide over: Streamlit refuses a slider whose
    ends are equal, and until stop 56 the viewer ended in that error."""
    if slices_n <= 1:
        where.caption(f"{label}: 1 slice")
        return 0
    return where.slider(label, 0, slices_n - 1, min(start, slices_n - 1), key=key)


def show_planes(scan: pd.Series, run: dict[str, Any], view: ViewSettings) -> None:
    """Slice sliders and the axial / coronal / sagittal images of one scan."""
    volume = _load(scan["volume_path"], "Original")
    if volume is None:
        st.stop()
    recon = _load(scan["recon_path"], "Reconstruction")
    error = _load(scan["error_path"], "|error|")
    scan_mm, run_mm = float(scan["spacing_mm"]), float(run.get("spacing_mm") or scan["spacing_mm"])
    region, start = None, [n // 2 for n in volume.shape]
    if error is not None:  # open at the hottest region; the regions outlined on every plane
        map_mm = slices.layer_spacing_mm(error.shape, volume.shape, scan_mm, run_mm)
        first = scan_volumes.first_region_at(scan, error.shape, volume.shape)
        region, hottest = _hottest_regions(scan["error_path"], map_mm, first)
        if hottest is not None:
            start = [slices.map_index(i, map_mm, scan_mm, n)
                     for i, n in zip(hottest, volume.shape, strict=True)]
    sliders = st.columns(3)
    indices = tuple(
        slice_slider(sliders[axis], f"{plane} slice", volume.shape[axis], start[axis],
                     key=f"slice_{plane}_{scan['scan_id']}")
        for axis, plane in enumerate(slices.PLANES)
    )
    images = render_views(
        volume,
        indices,
        view,
        recon=recon,
        error=error,
        region=region,
        scan_spacing_mm=scan_mm,
        run_spacing_mm=run_mm,
    )
    overlay = " + |error|" if error is not None and view.opacity > 0 else ""
    layers = [
        ("original" + overlay, "original"),
        ("reconstruction", "reconstruction"),
        ("|error|", "error"),
    ]
    for caption, field in layers:
        if getattr(images["axial"], field) is None:
            continue
        for col, plane in zip(st.columns(3), slices.PLANES, strict=True):
            col.image(
                getattr(images[plane], field), caption=f"{plane} · {caption}", width="stretch"
            )
    if recon is None and error is None:
        st.caption(
            "No reconstruction or |error| volume is stored for this scan (score keeps "
            "them for flagged scans by default: `ctae score --keep-volumes all`)."
        )
    elif run_mm != scan_mm:
        st.caption(
            f"Reconstruction and |error| are on the run's {run_mm:g} mm grid (original "
            f"{scan_mm:g} mm); slices are matched by physical position."
        )


VIEW_MODES = ("interactive", "server-rendered")
_VIEWER_FIELDS = ("scan_id", "volume_path", "recon_path", "error_path", "spacing_mm",
                  "source_root", "source_path", "series_uid")


def show_scan(scan: pd.Series, run: dict[str, Any], above: Any) -> None:
    """The interactive viewer (as acquired where the source is reachable; its window, overlay
    and layout controls in its own tool bar), or the server-rendered planes with the page's
    window controls when asked for or when the browser viewer fails. The view choice and the
    viewer's caption go into ``above``, drawn after the viewer so that its element reaches the
    browser first."""
    if st.session_state.get("view_mode", VIEW_MODES[0]) == "interactive":
        fields = {k: (None if pd.isna(scan.get(k)) else scan.get(k)) for k in _VIEWER_FIELDS}
        try:
            with st.spinner("Reading the series …"):
                prepared = scan_volumes.viewer_scan(fields)
        except VOLUME_UNREADABLE as err:
            _view_choice(above)
            st.warning(f"Original: {err}")
            st.stop()
        shown = volume_viewer.scan_viewer(prepared, str(scan["scan_id"]))
        _view_choice(above)
        n = len(prepared.regions_xyz)
        hottest = (" · opened at the hottest |error| region (outlined)" if prepared.crosshair_xyz else "")
        hottest += f"; ‘next region’ steps through the {n} hottest" if n > 1 else ""
        above.caption(prepared.note + hottest)
        if not (isinstance(shown, dict) and shown.get("failed")):
            return
        st.info(f"The interactive viewer failed ({shown['failed']}): the server renders the "
                "slices instead.")
    else:
        _view_choice(above)
    show_planes(scan, run, window_controls())


def _view_choice(where: Any) -> str:
    return where.radio(
        "View", VIEW_MODES, horizontal=True, key="view_mode",
        help="Interactive: scroll (wheel), window/level (right drag), zoom/pan and a crosshair "
        "linked across planes, all in the browser. Server-rendered: one image per slider move.",
    )


def evidence_caption(scan: pd.Series) -> str | None:
    """What the outlier score rests on, in words: its strongest scored kind of evidence, or its
    three strongest together where they, not the strongest alone, decide the score
    (``ctae_core.combined_evidence``); None when the run has no outlier score for the scan."""
    z = {k: scan.get(k) for k in EVIDENCE_NAMES}
    z = {k: float(v) for k, v in z.items() if v is not None and pd.notna(v)}
    if not z:
        return None
    from ctae_core.combined_evidence import deciding_kinds
    from ctae_core.outlier_score import SCORED_EVIDENCE

    scored = {k: v for k, v in z.items() if k in SCORED_EVIDENCE}
    if not scored:  # no scored kind measured: name the largest shown
        name = max(z, key=z.get)
        others = ", ".join(f"{k} {v:+.1f}" for k, v in z.items() if k != name)
        return f"Strongest evidence: {_words(name, scan)} (z {z[name]:+.1f}; {others})"
    ranked = sorted(scored, key=scored.get, reverse=True)
    column = np.array([[scored.get(k, np.nan)] for k in SCORED_EVIDENCE])
    deciding = ranked[: max(int(deciding_kinds(column)[0]), 1)]
    others = ", ".join(f"{k} {v:+.1f}" for k, v in z.items() if k not in deciding)
    if len(deciding) == 1:
        return f"Strongest evidence: {_words(deciding[0], scan)} (z {z[deciding[0]]:+.1f}; {others})"
    named = [f"{_words(k, scan)} (z {z[k]:+.1f})" for k in deciding]
    return (f"Strongest evidence together: {', '.join(named[:-1])} and {named[-1]} "
            f"(none of them alone as unlikely for an inlier; {others})")


def _words(kind: str, scan: pd.Series) -> str:
    """The kind of evidence in words; the local error says where it lies (inside the patient or
    on its shell, by the two regions' z stored since schema v20) where the run has them."""
    inner, shell = scan.get("local_error_interior_z"), scan.get("local_error_shell_z")
    if kind != "local_error_z" or inner is None or shell is None or pd.isna(inner) or pd.isna(shell):
        return EVIDENCE_NAMES[kind]
    where = ("inside the patient" if inner >= shell
             else "on the patient's outer shell (the skin and what lies on it: electrodes, leads, cables)")
    return (f"a local object the model did not reproduce, {where} (the interior's peak z {inner:+.1f}, "
            f"the shell's {shell:+.1f}; the viewer opens there)")


def scan_facts(scan: pd.Series, admin: bool = False) -> pd.DataFrame:
    """The scan's facts as a two-column table (source UID and path for admins only)."""
    facts = scan.reindex([f for f in FACTS if admin or f not in ADMIN_ONLY_FACTS])
    return pd.DataFrame(
        {
            "fact": facts.index,
            "value": facts.map(
                lambda v: (
                    ""
                    if v is None or (isinstance(v, float) and pd.isna(v))
                    else (f"{v:.5g}" if isinstance(v, float) else str(v))
                )
            ).to_numpy(),
        }
    )


PLAIN_FACT = re.compile(r"[A-Za-z0-9 .,+\-×·°%=/]*")
"""A fact value Markdown shows as written: no link, image, emphasis or code can start in it."""


def facts_table(facts: pd.DataFrame) -> str:
    """The facts as a Markdown table (cheap for the browser: no data grid). A value with any
    other sign is shown as written, in a code span: manufacturer, kernel and model come from the
    scan's own headers, and until stop 56 a header such as ``![](https://host/p.png)`` drew a
    picture fetched from that host in the browser of every reviewer who opened the scan (and an
    address in it became a link)."""
    def cell(v: object) -> str:
        text = str(v).replace("\n", " ")
        if PLAIN_FACT.fullmatch(text) and "www." not in text.lower():
            return text
        fence = "``" if "`" in text else "`"
        piped = text.replace("|", "\\|")  # a table cell's pipe, even in code
        return f"{fence} {piped} {fence}"

    rows = [f"| {f} | {cell(v)} |" for f, v in zip(facts["fact"], facts["value"], strict=True)]
    return "\n".join(["| fact | value |", "| --- | --- |", *rows])
