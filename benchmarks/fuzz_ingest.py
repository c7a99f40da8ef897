"""Fuzz ingest with over a thousand mutated real files in mixed trees beside good series.

    .venv/bin/python benchmarks/fuzz_ingest.py [--trees 40] [--files 22] [--special 3] [--seed 16]

Each tree holds the good GE series (symlinks to ../shared/data), a good NIfTI, ``--files``
mutated files (byte flips, truncation, deleted or corrupted tags, wrong VRs, swapped
dimensions, NaN voxels), ``--special`` special entries (FIFO, socket, symlink loop, broken
link, empty file, unreadable file or folder) and one mutated copy of the GE series, and is
ingested by `ctae ingest` as its own process (file permissions honoured even as root).
Printed: whole-job failures, hangs, unlisted mutants (must all be 0), good inputs whose HU
differ from a clean run (0), the mutants by outcome, and the time per tree against the clean
run's (the baseline, measured in the same run).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import warnings
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fuzz_factory import (  # noqa: E402
    REAL,
    build_tree,
    count_outcomes,
    ingest_tree,
    read_results,
    restore_permissions,
)

OUT = ROOT / "benchmarks" / "out" / "fuzz"


def main(trees: int, files: int, special: int, seed: int) -> int:
    """Run the fuzz; returns the number of violations (failures + hangs + unlisted + HU)."""
    warnings.simplefilter("ignore")  # pydicom warns about every value the mutations broke
    if not REAL.is_dir():
        raise SystemExit(f"real CT data not found at {REAL}")
    OUT.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory(dir=OUT) as tmp:
        work = Path(tmp)
        clean = work / "clean"
        build_tree(clean, rng, 0, 0, series_mutant=False)
        start = time.perf_counter()
        code, output = ingest_tree(clean, timeout_s=600)
        clean_s = time.perf_counter() - start
        if code != 0:
            raise SystemExit(f"the clean tree failed to ingest:\n{output}")
        expected = read_results(clean, []).good_hashes
        failures, hangs, wrong_hu, outcomes, seconds = [], [], 0, Counter(), []
        by_op: dict[str, Counter] = {}
        n_mutants = 0
        for index in range(trees):
            tree = work / f"tree{index:03d}"
            mutants = build_tree(tree, rng, files, special, first=n_mutants)
            n_mutants += len(mutants)
            start = time.perf_counter()
            try:
                code, output = ingest_tree(tree, timeout_s=600)
            finally:
                restore_permissions(tree)
            seconds.append(time.perf_counter() - start)
            if code == "hang":
                hangs.append(tree.name)
            elif code != 0:
                failures.append((tree.name, code, output[-2000:]))
            if code == 0:
                result = read_results(tree, mutants)
                outcomes += count_outcomes([result])
                wrong_hu += sum(result.good_hashes.get(k) != v for k, v in expected.items())
                wrong_hu += result.job_status != ["done"]
                for mutant in mutants:
                    kind = (
                        mutant.op.split("_", 1)[0] if mutant.op.startswith("series") else mutant.op
                    )
                    by_op.setdefault(kind, Counter())[result.outcomes[mutant.folder]] += 1
            shutil.rmtree(tree, ignore_errors=True)
            (work / f"{tree.name}.duckdb").unlink(missing_ok=True)
            print(
                f"tree {index + 1}/{trees}: {len(mutants)} mutants, exit {code}, "
                f"{seconds[-1]:.1f} s",
                flush=True,
            )
    unlisted = outcomes["unlisted"]
    print(f"\nmutated inputs                {n_mutants}")
    print(f"whole-job failures            {len(failures)}")
    print(f"hangs (no exit in 600 s)      {len(hangs)}")
    print(f"mutants neither ingested nor listed  {unlisted}")
    print(f"good inputs with other HU, or job_runs not 'done'  {wrong_hu}")
    print(
        f"seconds per tree              median {np.median(seconds):.1f}, max {max(seconds):.1f}"
        f"  ratio {np.median(seconds) / clean_s:.2f} (baseline: the clean tree, {clean_s:.1f} s)"
    )
    print("\nmutants by outcome:")
    for outcome, count in outcomes.most_common():
        print(f"  {count:5d}  {outcome}")
    print("\nby mutation (outcome: count):")
    for op, counts in sorted(by_op.items()):
        print(f"  {op:18s} " + ", ".join(f"{o} {n}" for o, n in counts.most_common()))
    for name, code, output in failures:
        print(f"\n{name} exited {code}:\n{output}")
    return len(failures) + len(hangs) + unlisted + wrong_hu


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trees", type=int, default=40)
    parser.add_argument("--files", type=int, default=22)
    parser.add_argument("--special", type=int, default=3)
    parser.add_argument("--seed", type=int, default=16)
    args = parser.parse_args()
    sys.exit(1 if main(args.trees, args.files, args.special, args.seed) else 0)
