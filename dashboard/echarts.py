"""Pure DataFrame → ECharts option builders for the charts a page draws as it opens: the
explorer's score scatters and split histograms, the Overview's training curve (no Streamlit).

Why ECharts and not Plotly here: Streamlit loads a chart library's bundle only when a page shows
one of its charts, and the browser evaluates it on every page load. Plotly's bundle is 4.7 MB
(evaluating it was the largest part of what the explorer and the Overview cost beyond a bare
page); ECharts' is 1.2 MB and draws the same density, points, threshold line, tooltips and box
/ lasso selection (``st.echarts_chart`` with ``on_select``). Values are rounded to 4
significant digits: the tooltips show them as they are sent, and the option stays small.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from dashboard import density
from dashboard.charts import AXIS_TITLES, DENSITY_FROM, category_colour, category_of

DENSITY_NAME = "all scans (density)"
DENSITY_SHADES = 8
"""Shades of the density layer, in equal steps of log10(scans per cell)."""
_DENSITY_RGB = [(198, 219, 239), (66, 146, 198), (8, 48, 107)]
"""Light to dark blue: the shade of one scan per cell, of the middle, of the fullest cell."""
BRUSH_TYPES = ["rect", "polygon", "clear"]
"""The toolbox's selection tools: a box, a lasso, and clearing them."""


@dataclass(frozen=True)
class ScatterChart:
    """An ECharts option and, per series, the scan id of each data item (None for the density
    layer), so a selection maps back to scans.

    Attributes:
        option: The ECharts option (JSON-compatible).
        scan_ids: Per series: object ndarray of scan ids, in the order of its data, or None.
        alt: What the chart shows, in words (its accessible name).
    """

    option: dict
    scan_ids: list[np.ndarray | None]
    alt: str

    @property
    def points_identity(self) -> str:
        """A short hash of which scan each item of each series is: a selection (ECharts reports
        item indices) still means the same scans exactly while this stays the same."""
        digest = hashlib.blake2b(digest_size=6)
        for ids in self.scan_ids:
            digest.update(b"\x1e" if ids is None else "\x1f".join(ids).encode() + b"\x1e")
        return digest.hexdigest()


def rounded(values: np.ndarray, digits: int = 4) -> list[float | None]:
    """``values`` to ``digits`` significant digits as JSON numbers (None where not finite).

    Vectorised: an integer-valued float divided (or multiplied) by an exact power of ten is the
    double nearest the decimal, so it prints as that decimal (formatting each value as text
    took ~35 µs a value on a loaded machine, most of a filter change's server time).
    """
    a = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(a)
    exponent = np.zeros(a.shape, dtype=np.int64)
    scaled = finite & (a != 0)
    exponent[scaled] = np.floor(np.log10(np.abs(a[scaled]))).astype(np.int64) - (digits - 1)
    scale = 10.0 ** np.abs(exponent)
    with np.errstate(over="ignore", invalid="ignore"):  # in the branch np.where discards
        out = np.where(exponent < 0, np.round(a * scale) / scale, np.round(a / scale) * scale)
    return np.where(finite, out, None).tolist()


def _axis(column: str, *, log: bool = False) -> dict:
    return {
        "type": "log" if log else "value",
        "name": AXIS_TITLES.get(column, column),
        "nameLocation": "middle",
        "nameGap": 28,
        "scale": True,
        "splitLine": {"show": True},
    }


_BATCHED = {"large": True, "largeThreshold": 0, "progressive": 0}
"""A scatter series drawn as one batched path, at once rather than in chunks over several frames:
2,600 markers drawn one by one cost ~1.4 s of a page load (load ~16); a point's tooltip and a
click on it still work, only the hover highlight is gone."""


def _threshold_line(threshold: float, axis: str, **label: str) -> dict:
    """The threshold T as a dashed black line across the plot at ``axis`` ("xAxis" or "yAxis")."""
    return {
        "silent": True,
        "symbol": "none",
        "lineStyle": {"type": "dashed", "color": "black"},
        "label": {"formatter": f"T = {threshold:.4g}", **label},
        "data": [{axis: threshold}],
    }


def _line_chart(x_axis: dict, y_axis: dict, series: list[dict]) -> dict:
    """The layout the histogram and the training curve share: legend on top, axis tooltip."""
    return {
        "animation": False,  # drawn at once: the page is ready when the chart is
        "grid": {"left": 60, "right": 30, "top": 40, "bottom": 45},
        "legend": {"top": 0},
        "tooltip": {"trigger": "axis"},
        "xAxis": x_axis,
        "yAxis": y_axis,
        "series": series,
    }


def _tooltip_rows(x: str, y: str) -> str:
    return f"{AXIS_TITLES.get(x, x)}: {{@[0]}}<br/>{AXIS_TITLES.get(y, y)}: {{@[1]}}"


def _point_series(rows: pd.DataFrame, name: str, x: str, y: str) -> dict:
    """One category's scans as markers: [x, y, scan_id] per point, its hover facts, clickable
    (a click reports the point's index in the series)."""
    data = [
        [px, py, sid]
        for px, py, sid in zip(
            rounded(rows[x].to_numpy()), rounded(rows[y].to_numpy()),
            rows["scan_id"].astype(str).tolist(), strict=True,
        )
    ]
    series = {
        "type": "scatter",
        "name": name,
        "data": data,
        "symbolSize": 6,
        "selectedMode": "multiple",
        **_BATCHED,
        "itemStyle": {"opacity": 0.8},
        "tooltip": {"formatter": f"<b>{{@[2]}}</b> · {{a}}<br/>{_tooltip_rows(x, y)}"},
    }
    colour = category_colour(name)
    if colour:
        series["itemStyle"]["color"] = colour
    return series


def _density_series(scans: pd.DataFrame, x: str, y: str, log_y: bool) -> list[dict]:
    """Every scan as its cell's count on a grid: one square per non-empty cell, in one series
    per shade (``DENSITY_SHADES`` steps of log10(count): one scan already shows, the fullest
    cell is darkest), each drawn as one batched path."""
    grid = density.bin_counts(scans[x].to_numpy(), scans[y].to_numpy(), log_y=log_y)
    rows, cols = np.nonzero(grid.counts)
    counts = grid.counts[rows, cols]
    most = np.log10(max(int(counts.max()), 2)) if counts.size else 1.0
    shade = np.minimum((np.log10(counts) / most * DENSITY_SHADES).astype(int), DENSITY_SHADES - 1)
    cells_x, cells_y = rounded(grid.x_centres[cols]), rounded(grid.y_centres[rows])
    series = []
    for level in range(DENSITY_SHADES):
        members = np.flatnonzero(shade == level)
        if not members.size:
            continue
        series.append({
            "type": "scatter",
            "name": DENSITY_NAME,
            "data": [[cells_x[i], cells_y[i], int(counts[i])] for i in members],
            "symbol": "rect",
            "symbolSize": [7, 6],  # a cell of the 128 × 96 grid on a half-width plot
            "itemStyle": {"color": _shade(level / max(DENSITY_SHADES - 1, 1))},
            **_BATCHED,  # its cells need no highlight on hover
            "z": 1,
            "tooltip": {"formatter": f"{{@[2]}} scans (density)<br/>{_tooltip_rows(x, y)}"},
        })
    return series


def _shade(t: float) -> str:
    """Light (0) to dark (1) blue."""
    rgb = [np.interp(t, [0.0, 0.5, 1.0], [c[k] for c in _DENSITY_RGB]) for k in range(3)]
    return "rgb({:.0f},{:.0f},{:.0f})".format(*rgb)


def score_scatter(
    scans: pd.DataFrame,
    x: str,
    y: str,
    color_by: str,
    threshold: float | None,
    log_score: bool = False,
    points: pd.DataFrame | None = None,
) -> ScatterChart:
    """Score against a scan fact (thesis Fig. 4.2–4.5) with the threshold T as a dashed line;
    ``log_score`` puts the score on a log axis. Above ``DENSITY_FROM`` scans, a density layer
    of all of them with only ``points`` (the flagged, labelled and selected scans) drawn as
    markers coloured by ``color_by``; else every scan as a marker."""
    dense = len(scans) > DENSITY_FROM
    drawn = (scans.iloc[:0] if points is None else points) if dense else scans
    if log_score:  # a log axis cannot show a score <= 0
        drawn = drawn[drawn[y] > 0]
    series: list[dict] = []
    scan_ids: list[np.ndarray | None] = []
    if dense:
        layer = _density_series(scans, x, y, log_score)
        series += layer
        scan_ids += [None] * len(layer)
    categories = category_of(drawn, color_by)
    for name in sorted(categories.unique()):
        rows = drawn[(categories == name).to_numpy()]
        series.append(_point_series(rows, name, x, y))
        scan_ids.append(rows["scan_id"].to_numpy(dtype=object))
    if not series:  # no scan to draw: an empty series still carries the axes and T
        series.append({"type": "scatter", "name": "no scans", "data": []})
        scan_ids.append(None)
    if threshold is not None:
        series[-1]["markLine"] = _threshold_line(threshold, "yAxis", position="insideEndTop")
    points_index = [k for k, ids in enumerate(scan_ids) if ids is not None]
    option = {
        "animation": False,  # drawn at once: the page is ready when the chart is
        "grid": {"left": 60, "right": 20, "top": 60, "bottom": 45},
        "legend": {"top": 0, "left": 100, "type": "scroll"},
        "tooltip": {"trigger": "item"},
        "toolbox": {"left": 0, "top": 0, "feature": {"brush": {"type": BRUSH_TYPES}}},
        "brush": {
            "xAxisIndex": 0,
            "yAxisIndex": 0,
            "seriesIndex": points_index or "all",
            "outOfBrush": {"colorAlpha": 0.3},  # the scans outside fade, keeping their colour
            "throttleType": "debounce",
            "throttleDelay": 300,
        },
        "xAxis": _axis(x),
        "yAxis": _axis(y, log=log_score),
        "series": series,
    }
    n_points = sum(len(ids) for ids in scan_ids if ids is not None)
    alt = (
        f"{AXIS_TITLES.get(y, y)} against {AXIS_TITLES.get(x, x)}"
        + (" on a log score axis" if log_score else "")
        + f": {len(scans):,} scans"
        + (f" as a density, {n_points:,} drawn as points" if dense else "")
    )
    return ScatterChart(option=option, scan_ids=scan_ids, alt=alt)


def split_histograms(
    scans: pd.DataFrame, column: str, threshold: float | None, splits=("val", "test")
) -> dict:
    """Overlaid histograms of a score per split with T (thesis Fig. 4.7 / 4.8), binned here on
    shared edges (60 bins) and drawn as filled steps, so the option holds counts, not scans."""
    values = {
        split: scans.loc[scans["split"] == split, column].dropna().to_numpy(dtype=np.float64)
        for split in splits
    }
    finite = np.concatenate([v[np.isfinite(v)] for v in values.values()] or [np.empty(0)])
    edges = np.histogram_bin_edges(finite, bins=60) if finite.size else np.linspace(0, 1, 61)
    centres = rounded((edges[:-1] + edges[1:]) / 2)
    series = []
    for split, split_values in values.items():
        counts, _ = np.histogram(split_values[np.isfinite(split_values)], bins=edges)
        series.append({
            "type": "line",
            "name": f"{split} (n={len(split_values)})",
            "step": "middle",
            "symbol": "none",
            "areaStyle": {"opacity": 0.35},
            "data": [[c, int(n)] for c, n in zip(centres, counts, strict=True)],
        })
    if threshold is not None:
        series[-1]["markLine"] = _threshold_line(threshold, "xAxis")
    return _line_chart({**_axis(column), "scale": False, "min": "dataMin", "max": "dataMax"},
                       {**_axis("scans"), "name": "scans", "scale": False}, series)


def training_curve(history: pd.DataFrame) -> dict:
    """Training and validation loss per epoch."""
    epochs = history["epoch"].astype(int).tolist()
    series = [
        {
            "type": "line",
            "name": name,
            "symbolSize": 4,
            "data": [[e, v] for e, v in zip(epochs, rounded(history[column].to_numpy()), strict=True)],
        }
        for column, name in (("train_loss", "train"), ("val_loss", "validation"))
    ]
    return _line_chart({**_axis("epoch"), "name": "epoch", "scale": False, "minInterval": 1},
                       {**_axis("loss"), "name": "loss (MSE)"}, series)
