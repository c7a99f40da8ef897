"""Pure DataFrame → Plotly figure builders (no Streamlit), testable on their own, and the names
and colours every chart shares (the explorer's and the Overview's are ECharts: echarts.py).

Scatters use ``Scattergl`` (WebGL); each point's ``customdata`` is its ``scan_id`` (one
string: three string columns made the 100k-point JSON 3× slower), so a selection maps back to
scans; the hover shows it with the point's category and values.
"""

from __future__ import annotations

import html

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative

from dashboard import slices

AXIS_TITLES = {
    "pixel_count": "pixel count (voxels at the stored spacing)",
    "hu_max": "max HU",
    "hu_mean": "mean HU",
    "mse": "MSE",
    "mse_m": "MSE_m (body-masked)",
    "mse_region": "MSE over the scan's region",
    "outlier_score": "outlier score (strongest evidence, −log p)",
    "mse_m_z": "MSE_m for its size (z)",
    "latent_z": "latent distance (z)",
    "histogram_z": "HU histogram distance (z)",
    "tissue_z": "tissue composition distance (z)",
    "contrast_z": "missing contrast (z)",
    "shape_z": "body outline distance (z)",
    "fov_z": "body on the reconstructed field's edge (z)",
    "noise_z": "image noise (z)",
    "streak_z": "streaks (z)",
    "streak_contrast": "strongest straight line through the body (SNR)",
    "integrity_z": "series defects (z)",
    "ring_z": "ring artefact (z)",
    "metal_z": "metal away from bone (z)",
    "skin_object_z": "dense object on the skin (z)",
    "inner_object_z": "dense object inside (z)",
    "long_object_z": "long dense object (z)",
    "noise_hu": "image noise SD at 3 mm (HU)",
    "native_noise_hu": "image noise SD on the acquired grid (HU)",
    "score": "score",
    "umap_x": "UMAP 1",
    "umap_y": "UMAP 2",
}
COLOR_COLUMNS = {"flag": "flag", "label": "label", "cluster": "cluster"}
DENSITY_FROM = 5_000
"""More scans than this are drawn as a density layer: 100k markers cannot be told apart, and
their figure JSON (7 MB for the explorer at 100k) took the browser 8–12 s to receive and draw."""
TABLE_ROWS = 5_000
"""Flagged scans the explorer's table lists, the highest scores first: at 1M scans all 26k of
them made 3 MB of Arrow for the browser on every visit, more than anyone reads in a table."""
_PALETTE = {
    "flagged": "#d62728",
    "not flagged": "#1f77b4",
    "unscored": "#999999",
    "outlier": "#d62728",
    "inlier": "#2ca02c",
    "unsure": "#ff7f0e",
    "unlabeled": "#9ab",
    "noise": "#999999",
}
CLUSTER_COLOURS = qualitative.Plotly


def cluster_name(cluster: float) -> str:
    """How a DBSCAN cluster is called in legends: ``cluster k``, or ``noise`` for -1."""
    return "noise" if cluster == -1 else f"cluster {int(cluster)}"


def category_colour(name: str) -> str | None:
    """The one colour of a category in every chart (cluster k keeps its colour whatever the
    order of the traces); None leaves it to Plotly."""
    if name in _PALETTE:
        return _PALETTE[name]
    if name.startswith("cluster "):
        return CLUSTER_COLOURS[int(name.split()[1]) % len(CLUSTER_COLOURS)]
    return None


def category_of(scans: pd.DataFrame, color_by: str) -> pd.Series:
    """The category each scan is coloured by: flag, current label, DBSCAN cluster, manufacturer
    or kernel."""
    if color_by == "flag":
        flag = scans["is_outlier"]
        return pd.Series(
            np.where(
                flag.isna(),
                "unscored",
                np.where(flag.fillna(False).astype(bool), "flagged", "not flagged"),
            ),
            index=scans.index,
        )
    if color_by == "label":
        return scans["label"].fillna("unlabeled").astype(str)
    if color_by == "cluster":
        return scans["cluster"].map(lambda c: "none" if pd.isna(c) else cluster_name(c))
    if color_by in ("manufacturer", "kernel"):  # acquisition: do clusters follow the scanner?
        # a header's own text, shown as written: Plotly draws a legend's <a href> as a link
        return scans[color_by].fillna("unknown").astype(str).map(html.escape)
    raise ValueError(f"colour by {color_by!r} must be one of {list(COLOR_COLUMNS)}")


def _hover(x: str, y: str) -> str:
    return (
        "<b>%{customdata}</b> · %{fullData.name}<br>"
        + f"{AXIS_TITLES.get(x, x)}: %{{x:.4g}}<br>{AXIS_TITLES.get(y, y)}: %{{y:.4g}}"
        + "<extra></extra>"
    )


def categorical_scatter(
    scans: pd.DataFrame, x: str, y: str, color_by: str, title: str = ""
) -> go.Figure:
    """WebGL scatter of ``y`` against ``x`` with one trace per colour category."""
    fig = go.Figure()
    categories = category_of(scans, color_by)
    custom = scans["scan_id"].to_numpy(dtype=object)
    for name in sorted(categories.unique()):
        rows = (categories == name).to_numpy()
        fig.add_trace(
            go.Scattergl(
                x=scans[x].to_numpy()[rows],
                y=scans[y].to_numpy()[rows],
                mode="markers",
                name=name,
                customdata=custom[rows],
                hovertemplate=_hover(x, y),
                marker={"size": 5, "opacity": 0.75, "color": category_colour(name)},
            )
        )
    fig.update_layout(
        title=title,
        xaxis_title=AXIS_TITLES.get(x, x),
        yaxis_title=AXIS_TITLES.get(y, y),
        legend_title=color_by,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        height=420,
    )
    return fig


def continuous_scatter(scans: pd.DataFrame, x: str, y: str, color: str) -> go.Figure:
    """WebGL scatter coloured by a numeric column (e.g. UMAP coloured by pixel count)."""
    custom = scans["scan_id"].to_numpy(dtype=object)
    fig = go.Figure(
        go.Scattergl(
            x=scans[x].to_numpy(),
            y=scans[y].to_numpy(),
            mode="markers",
            name=color,
            customdata=custom,
            hovertemplate=_hover(x, y),
            marker={
                "size": 5,
                "color": scans[color].to_numpy(),
                "colorscale": "Viridis",
                "showscale": True,
                "colorbar": {"title": AXIS_TITLES.get(color, color)},
            },
        )
    )
    fig.update_layout(
        xaxis_title=AXIS_TITLES[x],
        yaxis_title=AXIS_TITLES[y],
        height=460,
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
    )
    return fig


def mark_flagged(fig: go.Figure, scans: pd.DataFrame, x: str, y: str) -> go.Figure:
    """Add the flagged scans as open black crosses on top of a scatter."""
    flagged = scans[scans["is_outlier"].fillna(False).astype(bool)]
    fig.add_trace(
        go.Scattergl(
            x=flagged[x].to_numpy(),
            y=flagged[y].to_numpy(),
            mode="markers",
            name="flagged (> T)",
            customdata=flagged["scan_id"].to_numpy(dtype=object),
            hovertemplate="<b>%{customdata}</b> · flagged<extra></extra>",
            marker={"symbol": "x-open", "size": 9, "color": "black"},
        )
    )
    return fig


CLUSTER_BINS = 30
"""Bins of the per-cluster histograms: shared by every cluster, so that bars line up (each
cluster binned on its own drew a comb of slivers of different widths)."""


def cluster_histograms(scans: pd.DataFrame, column: str, clusters: pd.Series) -> go.Figure:
    """Overlaid histograms of ``column`` per cluster on shared bins (thesis Fig. 4.21 / 4.22)."""
    every = scans[column].to_numpy(dtype=np.float64)
    every = every[np.isfinite(every)]
    edges = np.histogram_bin_edges(every, bins=CLUSTER_BINS) if every.size else None
    xbins = None if edges is None else {
        "start": float(edges[0]), "size": float(edges[1] - edges[0]) or 1.0,
        "end": float(edges[-1] + (edges[1] - edges[0]) / 2)}  # the largest value in the last bin
    fig = go.Figure()
    for cluster in sorted(clusters.dropna().unique()):
        values = scans.loc[(clusters == cluster).to_numpy(), column].dropna().to_numpy()
        name = cluster_name(cluster)
        fig.add_trace(
            go.Histogram(
                x=values,
                name=f"{name} (n={len(values)})",
                marker_color=category_colour(name),
                opacity=0.6,
                histnorm="probability",
                xbins=xbins,
            )
        )
    return _overlaid(fig, column, "fraction of cluster", height=320)


def hu_histogram(scan_counts: list[int] | None, dataset_counts: list[int]) -> go.Figure:
    """The scan's HU histogram against the dataset's, as fractions (thesis Fig. 4.9 / 4.10)."""
    centres = (slices.HU_HISTOGRAM_EDGES[:-1] + slices.HU_HISTOGRAM_EDGES[1:]) / 2
    fig = go.Figure()
    for counts, name, colour in ((dataset_counts or None, "dataset", "#1f77b4"),
                                 (scan_counts, "this scan", "#d62728")):
        if counts is not None:
            fig.add_trace(go.Scatter(x=centres, y=slices.histogram_fractions(counts), mode="lines",
                                     name=name, line={"color": colour}))
    fig.update_layout(
        xaxis_title="HU",
        yaxis_title="fraction of voxels",
        yaxis_type="log",
        height=300,
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
    )
    return fig


def _overlaid(fig: go.Figure, column: str, yaxis_title: str, *, height: int) -> go.Figure:
    """Shared layout of the overlaid histograms: one x axis named after ``column``."""
    fig.update_layout(
        barmode="overlay",
        xaxis_title=AXIS_TITLES.get(column, column),
        yaxis_title=yaxis_title,
        height=height,
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
    )
    return fig
