"""A server-rendered picture of a flagged scan opened at its stored hottest region: axial,
coronal and sagittal planes through it, each as the scan with the anomaly map overlaid and as the
reconstruction (the README's figure; the interactive viewer draws the same region).

    python benchmarks/shot_hottest.py --catalog C --run R [--scan SCAN_ID] --out shot.png

Without --scan: the flagged scan with the highest local error.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(catalog: Path, run_id: str, scan_id: str | None, out: Path) -> str:
    """Write the picture; returns the scan it shows."""
    from PIL import Image, ImageDraw

    from ctae_core.anomaly_map import hottest_region_mask
    from ctae_core.io.volume_store import load_volume
    from dashboard.render import ViewSettings, render_plane
    from data_catalog import connect
    from data_catalog.views import scan_table

    with connect(catalog, read_only=True) as con:
        scans = scan_table(con, run_id)
        run_mm = con.execute("SELECT spacing_mm FROM runs WHERE run_id = ?", [run_id]).fetchone()[0]
    scored = scans[scans["hot_z"].notna()]
    if scan_id is None:
        flagged = scored[scored["is_outlier"].fillna(False).astype(bool)]
        scan_id = str((flagged if len(flagged) else scored).sort_values("local_error_hu").iloc[-1]["scan_id"])
    row = scored.set_index("scan_id").loc[scan_id]
    volume = np.asarray(load_volume(row["volume_path"]))
    error = np.asarray(load_volume(row["error_path"]))
    recon = np.asarray(load_volume(row["recon_path"]))
    hot = (int(row["hot_z"]), int(row["hot_y"]), int(row["hot_x"]))
    # the viewer's outline: the stored region's rule, around the stored hottest region (where
    # `ctae score` put it: the rarer region's peak) when the map is on the stored grid
    on_stored = error.shape == volume.shape
    region = hottest_region_mask(error, at=hot if on_stored else None)[0]
    view = ViewSettings(width_hu=1500.0, level_hu=300.0, opacity=0.6, error_max_hu=400.0)
    tiles = []
    for plane, index in (("axial", hot[0]), ("coronal", hot[1]), ("sagittal", hot[2])):
        images = render_plane(volume, plane, index, view, recon=recon, error=error, region=region,
                              scan_spacing_mm=float(row["spacing_mm"]), run_spacing_mm=float(run_mm))
        tiles.append([Image.open(io.BytesIO(images.original)), Image.open(io.BytesIO(images.reconstruction))])
    size = 320
    sheet = Image.new("RGB", (3 * size, 2 * size + 24), "black")
    for col, pair in enumerate(tiles):
        for r, tile in enumerate(pair):
            scale = size / max(tile.size)  # keeps the plane's aspect (its voxels are isotropic)
            tile = tile.convert("RGB").resize((round(tile.width * scale), round(tile.height * scale)))
            sheet.paste(tile, (col * size + (size - tile.width) // 2, 24 + r * size + (size - tile.height) // 2))
    ImageDraw.Draw(sheet).text(
        (6, 6), f"{scan_id}  hottest region z{hot[0]} y{hot[1]} x{hot[2]}  {row['hot_volume_ml']:.1f} mL  "
        f"peak {float(error[hot]) if on_stored else row['local_error_hu']:.0f} HU   "
        "top: scan + anomaly map, region outlined; bottom: reconstruction",
        fill="white")
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    return scan_id


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalog", type=Path, required=True)
    parser.add_argument("--run", required=True)
    parser.add_argument("--scan")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    print(main(args.catalog, args.run, args.scan, args.out))
