"""Dashboard latency on a 100k-scan synthetic catalog.

Figures (each with a baseline measured in the same run):
- explorer first render (AppTest, cold caches) — baseline: reading its scans alone
  (``views.explorer_scans``);
- explorer filter change (AppTest rerun, warm caches) — baseline: the first render;
- slice change in the viewer (render of 3 planes × original / reconstruction / |error| from the
  memory-mapped store) — baseline: the same with the volumes loaded whole (no memory map);
- export of 100k rows (filter + CSV / Parquet / TXT) — baseline: reading the scan table alone.

Run: ``.venv/bin/python benchmarks/bench_dashboard.py [--quick]``; outputs go to benchmarks/out/.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.rows import row  # noqa: E402
from ctae_core.io.volume_store import load_volume  # noqa: E402
from dashboard.render import ViewSettings, render_views  # noqa: E402
from data_catalog import CatalogSettings, connect, views  # noqa: E402
from data_catalog.filters import ExportFilter, apply_filter, render_export  # noqa: E402
from jobs.synthetic_catalog import SyntheticSpec, build_synthetic_catalog  # noqa: E402

OUT = ROOT / "benchmarks" / "out" / "dashboard"
APP = str(ROOT / "dashboard" / "app.py")
RUN = "synthetic"


def _timed(fn, repeats: int = 1) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def build(n_scans: int) -> CatalogSettings:
    """A fresh synthetic catalog with realistic-size volumes (120×170×170 at 3 mm)."""
    shutil.rmtree(OUT, ignore_errors=True)
    settings = CatalogSettings.resolve(OUT / "catalog.duckdb", OUT / "store", env={})
    spec = SyntheticSpec(n_scans=n_scans, n_volume_files=4, shape_zyx=(120, 170, 170))
    started = time.perf_counter()
    build_synthetic_catalog(settings, spec)
    print(f"built {n_scans:,} synthetic scans in {time.perf_counter() - started:.1f} s")
    return settings


def _read_table(settings: CatalogSettings):
    with connect(settings.catalog_path, read_only=True) as con:
        return views.scan_table(con, RUN)


def _read_explorer_scans(settings: CatalogSettings):
    with connect(settings.catalog_path, read_only=True) as con:
        return views.explorer_scans(con, RUN)


def bench_explorer(settings: CatalogSettings, n: int) -> list[dict]:
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    os.environ["CTAE_CATALOG"] = str(settings.catalog_path)
    read_s = _timed(lambda: _read_explorer_scans(settings), 3)
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    st.cache_data.clear()
    st.cache_resource.clear()
    first_s = _timed(lambda: at.switch_page("app_pages/explorer.py").run())
    if at.exception:
        raise RuntimeError(f"explorer raised: {at.exception[0].value}")
    picks = [["test"], ["val", "test"], ["train"], []]
    change_s = statistics.median(
        _timed(lambda p=p: at.multiselect(key="explorer_splits").set_value(p).run()) for p in picks
    )
    charts = [*at.get("plotly_chart"), *at.get("echarts_chart")]  # the explorer's are ECharts
    spec_mb = sum(len(c.proto.spec) for c in charts) / 1e6
    at.switch_page("app_pages/viewer.py").run()
    at.radio(key="view_mode").set_value("server-rendered").run()  # the slider view
    key = next(w.key for w in at.slider if w.key and w.key.startswith("slice_axial_"))
    rerun_s = statistics.median(
        _timed(lambda i=i: at.slider(key=key).set_value(i).run()) for i in range(2, 12, 2)
    )
    print(f"explorer figures: {spec_mb:.2f} MB of JSON for {n:,} scans")
    return [
        row("dashboard",
            f"explorer first render, {n:,} scans (AppTest, cold cache)", first_s, "s", 1.5, read_s
        ),
        row("dashboard", f"explorer filter change, {n:,} scans (AppTest rerun)", change_s, "s", 0.5, first_s),
        row("dashboard",
            f"viewer slice slider, whole-page rerun, {n:,} scans (AppTest)",
            rerun_s * 1e3,
            "ms",
            None,
            first_s * 1e3,
        ),
    ]


def bench_slices(settings: CatalogSettings, repeats: int) -> list[dict]:
    table = _read_table(settings)
    scan = table[table["recon_path"].notna()].iloc[0]
    paths = (scan["volume_path"], scan["recon_path"], scan["error_path"])
    view = ViewSettings()
    rng = np.random.default_rng(0)

    def change(mmap: bool) -> float:
        volume, recon, error = (load_volume(p, mmap=mmap) for p in paths)
        index = tuple(int(rng.integers(0, s)) for s in volume.shape)
        return render_views(
            volume, index, view, recon=recon, error=error, scan_spacing_mm=3.0, run_spacing_mm=6.0
        )

    change(True)
    mmap_s = _timed(lambda: change(True), repeats)
    whole_s = _timed(lambda: change(False), max(3, repeats // 5))
    return [
        row("dashboard",
            "slice change, 3 planes × 3 layers, 120×170×170 mmap",
            mmap_s * 1e3,
            "ms",
            100.0,
            whole_s * 1e3,
        )
    ]


def bench_export(settings: CatalogSettings, n: int) -> list[dict]:
    read_s = _timed(lambda: _read_table(settings), 3)
    rows = []
    for fmt in ("csv", "parquet", "txt"):
        seconds = _timed(
            lambda f=fmt: render_export(
                apply_filter(_read_table(settings), ExportFilter(exclude_outliers=True)), f
            ),
            2,
        )
        rows.append(
            row("dashboard", f"export {n:,} scans to {fmt} (read + filter + write)", seconds, "s", None, read_s)
        )
    return rows


def main(quick: bool = False) -> list[dict]:
    """Build the catalog and measure every figure; returns the rows for benchmarks/run."""
    n = 100_000
    settings = build(n)
    rows = bench_explorer(settings, n)
    rows += bench_slices(settings, repeats=20 if quick else 100)
    rows += bench_export(settings, n)
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repeats, under a minute")
    args = parser.parse_args()
    for result in main(quick=args.quick):
        ratio = f"{result['ratio']:.2f}" if result["ratio"] is not None else "-"
        print(
            f"{result['figure']}: {result['value']:.3f} {result['unit']} "
            f"(target {result['target']}, baseline {result['baseline']:.3f}, ratio {ratio})"
        )
