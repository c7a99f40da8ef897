"""Render a PNG montage of the demo phantoms: an inlier and each planted outlier type.

One line per type, one column per strength (default: subtle 0.1, obvious 0.9); each cell shows
axial, coronal and sagittal planes through the centre of the volume (or of the planted
object), at true aspect ratio, window level 40 / width 1000 HU. A person can judge
the realism and the visibility of every outlier type at a glance.

    .venv/bin/python tools/montage.py [--strengths 0.1 0.9] [--seed 3] [--out tools/out/montage.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ctae_core.phantoms import (
    INLIER,
    OUTLIER_TYPES,
    Tissue,
    draw_geometry,
    draw_subject,
    render_scan,
)

CELL_PX = 200
WINDOW_LEVEL_HU, WINDOW_WIDTH_HU = 40.0, 1000.0


def _to_gray(plane: np.ndarray, pixel_mm: tuple[float, float]) -> Image.Image:
    """Window a 2-D HU plane to 8 bit and scale it to true aspect, fitting a CELL_PX square."""
    low = WINDOW_LEVEL_HU - WINDOW_WIDTH_HU / 2
    gray = np.clip((plane.astype(np.float32) - low) / WINDOW_WIDTH_HU * 255.0, 0, 255)
    height_mm, width_mm = plane.shape[0] * pixel_mm[0], plane.shape[1] * pixel_mm[1]
    scale = CELL_PX / max(height_mm, width_mm)
    size = (max(1, round(width_mm * scale)), max(1, round(height_mm * scale)))
    image = Image.fromarray(gray.astype(np.uint8)).resize(size, Image.Resampling.BILINEAR)
    cell = Image.new("L", (CELL_PX, CELL_PX), 0)
    cell.paste(image, ((CELL_PX - size[0]) // 2, (CELL_PX - size[1]) // 2))
    return cell


def _centre(hu: np.ndarray, labels: np.ndarray) -> tuple[int, int, int]:
    """The planted metal/foreign object's centre if any, else the volume's centre."""
    planted = np.argwhere((labels == Tissue.METAL) | (labels == Tissue.FOREIGN))
    if len(planted):
        return tuple(int(v) for v in np.median(planted, axis=0))  # type: ignore[return-value]
    return tuple(n // 2 for n in hu.shape)  # type: ignore[return-value]


def render_row(truth: str, strength: float, seed: int) -> tuple[Image.Image, str]:
    """One row (axial | coronal | sagittal) of a scan with ``truth`` planted, and its caption."""
    rng = np.random.default_rng([seed, 0])
    params = draw_subject(rng)
    geometry = draw_geometry(np.random.default_rng([seed, 1]), params, "demo", long_scan=False)
    phantom = render_scan(params, geometry, truth, strength if truth != INLIER else 0.0, seed)
    hu, (sz, sy, sx) = phantom.hu.astype(np.float32), phantom.spacing_zyx_mm
    hu += phantom.effects.intercept_offset_hu
    for plane in phantom.effects.dropped_planes:
        hu[plane] = -1024.0  # shown as the gap a reader sees
    k, j, i = _centre(hu, phantom.labels)
    planes = [
        _to_gray(hu[k], (sy, sx)),
        _to_gray(hu[::-1, j, :], (sz, sx)),  # head at the top
        _to_gray(hu[::-1, :, i], (sz, sy)),
    ]
    row = Image.new("L", (3 * CELL_PX, CELL_PX))
    for n, plane in enumerate(planes):
        row.paste(plane, (n * CELL_PX, 0))
    shape = "x".join(str(v) for v in hu.shape)
    return row, f"{truth} s={strength:.2f}  {shape} @ {sz:.1f}/{sx:.1f} mm"


def build_montage(strengths: tuple[float, ...], seed: int) -> Image.Image:
    """The montage: one line per type (inlier first), one row of three planes per strength."""
    names = [INLIER, *OUTLIER_TYPES]
    caption_px, gap = 16, 8
    row_px = 3 * CELL_PX + gap
    sheet = Image.new("L", (len(strengths) * row_px, len(names) * (CELL_PX + caption_px)), 32)
    draw = ImageDraw.Draw(sheet)
    for line, name in enumerate(names):
        for column, strength in enumerate(strengths):
            row, caption = render_row(name, strength, seed + (column if name == INLIER else 0))
            x, y = column * row_px, line * (CELL_PX + caption_px)
            draw.text((x + 4, y + 2), caption, fill=255)
            sheet.paste(row, (x, y + caption_px))
    return sheet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--strengths",
        type=float,
        nargs="+",
        default=[0.1, 0.9],
        help="Outlier strengths in [0, 1], one column each (subtle, obvious).",
    )
    parser.add_argument(
        "--seed", type=int, default=3, help="Subject seed (same body in every row)."
    )
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "out" / "montage.png")
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    build_montage(tuple(args.strengths), args.seed).save(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
