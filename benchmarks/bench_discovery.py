"""Discovery speed (header walk of every file) against another checkout, in the same run.

    .venv/bin/python benchmarks/bench_discovery.py --baseline-tree /path/to/older/checkout

Times ``discover_sources`` in CPU seconds (immune to waiting for a core on a shared machine),
best of 7 per folder, in alternating processes of this checkout and the baseline one, over
the 300-slice synthetic series of bench_ingest.py and all of ../shared/data/real-ct.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = [
    ROOT / "benchmarks" / "out" / "ingest" / "synthetic_512x512x300",
    ROOT.parent / "shared" / "data" / "real-ct",
]
_PROBE = """
import json, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from ctae_core.io.sources import discover_sources
folders = [Path(p) for p in sys.argv[2:]]
discover_sources(folders)
best = {}
for _ in range(7):
    for folder in folders:
        cpu = time.process_time()
        discover_sources([folder])
        best[folder.name] = min(best.get(folder.name, 1e9), time.process_time() - cpu)
print(json.dumps(best))
"""


def _probe(tree: Path, folders: list[Path]) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, str(tree), *map(str, folders)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(baseline: Path, rounds: int) -> None:
    folders = [f for f in FOLDERS if f.is_dir()]
    if not folders:
        raise SystemExit("no folder to discover: run benchmarks/bench_ingest.py once first")
    best: dict[str, dict[str, float]] = {"this": {}, "baseline": {}}
    for _ in range(rounds):
        for name, tree in (("this", ROOT), ("baseline", baseline)):
            for folder, seconds in _probe(tree, folders).items():
                best[name][folder] = min(best[name].get(folder, 1e9), seconds)
    for folder in best["this"]:
        ours, theirs = best["this"][folder], best["baseline"][folder]
        print(
            f"discover {folder:28s} {ours * 1000:7.1f} ms CPU  ratio {ours / theirs:.2f} "
            f"(baseline {theirs * 1000:.1f} ms CPU)"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--baseline-tree",
        type=Path,
        required=True,
        help="another checkout of ctae (e.g. `git worktree add` of main)",
    )
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    main(args.baseline_tree.resolve(), args.rounds)
