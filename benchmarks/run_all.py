"""Run every benchmarks/bench_*.py and print one table of figures, targets and ratios.

Each benchmark module of the table exposes ``main(quick: bool) -> list[dict]`` with rows holding
``benchmark, figure, value, unit, target, baseline, ratio``; a ``bench_*.py`` whose ``main`` takes
no ``quick`` is a standalone script (it needs a catalog, a run or its own options: its docstring
says how to run it) and is listed, not run. The user-level rows of
``bench_user.py`` (whole commands as processes, pages in Chromium) are printed right after the
in-process rows of the same subject, so the two ways of measuring stand side by side.
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import json
import platform
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
COLUMNS = ["benchmark", "figure", "value", "unit", "target", "baseline", "ratio"]
USER_NEXT_TO = {"user: ingest": "ingest", "user: explorer": "dashboard", "user: train": "train"}
"""Which in-process rows (benchmark name prefix) a user-level row is printed after."""


def side_by_side(rows: list[dict]) -> list[dict]:
    """``rows`` with each user-level row moved after the last in-process row of its subject."""
    user = [r for r in rows if str(r["benchmark"]).startswith("user: ")]
    out = [r for r in rows if not str(r["benchmark"]).startswith("user: ")]
    for row in user:
        subject = next((v for k, v in USER_NEXT_TO.items() if row["benchmark"].startswith(k)), None)
        same = [i for i, r in enumerate(out) if subject and str(r["benchmark"]).startswith(subject)]
        out.insert(same[-1] + 1 if same else len(out), row)
    return out


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    sys.modules[spec.name] = module  # a dataclass in the module looks its module up there
    spec.loader.exec_module(module)
    return module


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def print_table(rows: list[dict]) -> None:
    cells = [[_cell(row.get(c)) for c in COLUMNS] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(COLUMNS)]
    print("  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, a few minutes in all")
    parser.add_argument("--only", nargs="*", help="bench names, e.g. ingest train")
    args = parser.parse_args()
    sys.path.insert(0, str(HERE))
    rows: list[dict] = []
    failed: list[str] = []
    standalone: list[str] = []
    for path in sorted(HERE.glob("bench_*.py")):
        name = path.stem.removeprefix("bench_")
        if args.only and name not in args.only:
            continue
        print(f"== {name}", flush=True)
        started = time.monotonic()
        try:
            module = _load(path)
            if "quick" not in inspect.signature(module.main).parameters:
                standalone.append(path.name)
                print("   standalone: run it by hand (its docstring says how)", flush=True)
                continue
            rows += module.main(quick=args.quick)
        except Exception:
            traceback.print_exc()
            failed.append(name)
        print(f"   ({time.monotonic() - started:.0f} s)", flush=True)
    print(f"\nmachine: {platform.machine()}, {platform.processor() or 'cpu'}, "
          f"python {platform.python_version()}")
    rows = side_by_side(rows)
    print_table(rows)
    out = HERE / "out"
    out.mkdir(exist_ok=True)
    (out / "results.json").write_text(json.dumps(rows, indent=2, default=str))
    if standalone:
        print(f"\nstandalone scripts, not in the table: {', '.join(standalone)}")
    if failed:
        print(f"\nbenchmarks that failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
