"""What measuring metal and small dense objects on the acquired grid (``ctae_core.native_metal.
native_density``, called once per series by ingest) costs, on the 512×512×99 CPTAC chest (B70f), against the rest of ingesting that
series, timed in the same run, interleaved.

    .venv/bin/python benchmarks/bench_native_metal.py [--repeats 5] [--series DIR]

``--series``: another DICOM series (e.g. the 512×512×134 Big Bore abdomen at 1.07 mm, whose every
voxel the shares read, in ``../shared/data/real-ct-anatomy/pancreas-ct-philips-bigbore/dicom``).

Prints, per repeat and as the best of the repeats (the machine may be shared; the minimum is the
least disturbed): ``ingest_one`` of the series (read, HU, resample, the metal measure, stats,
store), the measure alone on the same native volume, and its share of the ingest.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SERIES = ROOT.parent / "shared" / "data" / "real-ct" / "dlwpt-cptac-lscc-chest" / "volumetric-dicom" / "2-LUNG 3.0  B70f-04083"


def main() -> None:
    """Time ingest_one and native_density, interleaved."""
    from ctae_core.io.dicom_series import read_dicom_series
    from ctae_core.io.sources import discover_sources
    from ctae_core.native_metal import native_density
    from jobs.ingest_worker import ingest_one

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--series", type=Path, default=SERIES)
    args = parser.parse_args()
    (source,) = discover_sources([args.series]).sources
    volume, _ = read_dicom_series(source.files, "bench", source.headers)
    print(f"{args.series.name}: {volume.shape} voxels at {tuple(round(s, 2) for s in volume.spacing_zyx_mm)} mm")
    ingest, metal = [], []
    with tempfile.TemporaryDirectory() as store:
        for i in range(args.repeats):
            start = time.perf_counter()
            outcome = ingest_one(source, store, 3.0)
            ingest.append(time.perf_counter() - start)
            start = time.perf_counter()
            density = native_density(volume.hu, volume.spacing_zyx_mm)
            metal.append(time.perf_counter() - start)
            print(f"repeat {i + 1}: ingest_one {ingest[-1]:.3f} s, dense measure {metal[-1]:.3f} s "
                  f"({metal[-1] / ingest[-1]:.1%}); metal / skin / inner {density.metal_mm3:.0f} / "
                  f"{density.skin_object_mm3:.0f} / {density.inner_object_mm3:.0f} mm³ (stored: "
                  f"{outcome.scan.native_metal_mm3:.0f} / {outcome.scan.skin_object_mm3:.0f} / "
                  f"{outcome.scan.inner_object_mm3:.0f})")
    print(f"best: ingest_one {min(ingest):.3f} s, dense measure {min(metal):.3f} s "
          f"= {min(metal) / min(ingest):.1%} of the series' ingest")


if __name__ == "__main__":
    main()
