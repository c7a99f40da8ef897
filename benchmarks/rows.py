"""One benchmark row, the shape `benchmarks/run_all.py` prints: a figure, its target and its
ratio to a baseline measured in the same run."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def row(
    benchmark: str,
    figure: str,
    value: float,
    unit: str,
    target: float | str | None = None,
    baseline: float | None = None,
    ratio: float | None = None,
) -> dict:
    """A row; ``ratio`` defaults to value / baseline where there is a baseline."""
    if ratio is None and baseline:
        ratio = value / baseline
    return {
        "benchmark": benchmark,
        "figure": figure,
        "value": round(value, 4),
        "unit": unit,
        "target": target,
        "baseline": None if baseline is None else round(baseline, 4),
        "ratio": None if ratio is None else round(ratio, 3),
    }


def report_against(rows: list[dict], out: Path) -> list[dict]:
    """Print each row as "figure: value unit against baseline (ratio)" and keep them as JSON in
    ``out``; returns ``rows``."""
    for r in rows:
        print(f"{r['figure']}: {r['value']} {r['unit']} against {r['baseline']} (ratio {r['ratio']})")
    out.write_text(json.dumps(rows, indent=2))
    return rows


def against_parser(doc: str, against: str, rounds: int, quick: str) -> argparse.ArgumentParser:
    """The command line of a benchmark that times this build against a git revision,
    alternated: --quick (``quick`` says what it trims), --against REV, --rounds N."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=quick)
    parser.add_argument("--against", default=against, metavar="REV")
    parser.add_argument("--rounds", type=int, default=rounds)
    return parser
