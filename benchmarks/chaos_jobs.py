"""Chaos: kill -9 ingest, train, score and embed at random moments, re-run each, and check.

    .venv/bin/python benchmarks/chaos_jobs.py [--rounds 5] [--n 24] [--seed 16]

Each round starts from an empty catalog and kills each of the four jobs once, at a random
moment of its run, then re-runs it to completion (train with ``--resume``). After every kill:
the job's processes still alive 5 s later (orphans, must be 0). After every re-run: results
complete (every input ingested or refused, the run trained to its last epoch, every scan
scored and embedded), no duplicate row, no job_runs row left ``running``. Printed: one line a
kill, then counts by outcome, and each job's re-run time against its uninterrupted time (the
baseline, measured in the first round).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.chaos_factory import catalog_facts, kill_at, run  # noqa: E402

OUT = ROOT / "benchmarks" / "out" / "chaos"
JOBS = ("ingest", "train", "score", "embed")
EPOCHS = 2


def _args(job: str, cohort: Path, catalog: Path, store: Path) -> list[str]:
    common = ["--catalog", str(catalog)]
    return {
        "ingest": [
            "ingest",
            str(cohort),
            *common,
            "--store",
            str(store),
            "--workers",
            "2",
            "--no-progress",
        ],
        "train": [
            "train",
            *common,
            "--store",
            str(store),
            "--run",
            "r",
            "--preset",
            "tiny",
            "--epochs",
            str(EPOCHS),
            "--seed",
            "1",
        ],
        "score": ["score", *common, "--store", str(store), "--run", "r"],
        "embed": ["embed", *common, "--run", "r"],
    }[job]


def _complete(job: str, facts: dict[str, int], inputs: int) -> bool:
    unique = facts["scan_ids"] == facts["scans"] == facts["sources"]
    done = {
        "ingest": facts["scans"] == inputs,
        "train": facts["epochs_done"] == EPOCHS and facts["history_rows"] == EPOCHS,
        "score": facts["scored_scans"] == facts["scores"] == facts["scans"],
        "embed": facts["embeddings"] == facts["scores"] == facts["scans"],
    }[job]
    return unique and done and facts["running_jobs"] == 0


def main(rounds: int, n: int, seed: int) -> int:
    """Run the rounds; returns the number of violations."""
    OUT.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    estimate = {"ingest": 10.0, "train": 40.0, "score": 30.0, "embed": 20.0}
    clean_s: dict[str, float] = {}
    rerun_s: dict[str, list[float]] = {job: [] for job in JOBS}
    outcomes: Counter = Counter()
    violations = 0
    with tempfile.TemporaryDirectory(dir=OUT) as tmp:
        work = Path(tmp)
        cohort = work / "cohort"
        made = run("demo-data", str(cohort), "--n", str(n), "--seed", str(seed))
        if made.returncode != 0:
            raise SystemExit(f"demo-data failed:\n{made.stderr}")
        inputs = None
        for round_index in range(rounds):
            catalog, store = work / f"r{round_index}.duckdb", work / f"store{round_index}"
            for job in JOBS:
                args = _args(job, cohort, catalog, store)
                if round_index == 0:  # the baseline: one uninterrupted run, then start over
                    start = time.perf_counter()
                    first = run(*args)
                    clean_s[job] = time.perf_counter() - start
                    if first.returncode != 0:
                        raise SystemExit(f"{job} failed without a kill:\n{first.stderr[-3000:]}")
                    estimate[job] = clean_s[job]
                    if job == "ingest":
                        inputs = catalog_facts(catalog)["scans"]
                    _reset(job, catalog, store)
                at_s = float(rng.uniform(0.1, 0.9)) * estimate[job]
                kill = kill_at(job, args, at_s)
                start = time.perf_counter()
                resume = job == "train" and _has_run(catalog)
                again = run(*(args + (["--resume"] if resume else [])))
                rerun_s[job].append(time.perf_counter() - start)
                facts = catalog_facts(catalog, "r")
                complete = again.returncode == 0 and _complete(job, facts, inputs or 0)
                outcome = ("killed" if kill.killed else "finished before the kill") + (
                    ", re-run complete" if complete else ", re-run INCOMPLETE"
                )
                outcomes[outcome] += 1
                outcomes["orphans"] += len(kill.orphans)
                violations += len(kill.orphans) + (not complete)
                print(
                    f"round {round_index + 1} {job:6s} kill at {at_s:5.1f} s: "
                    f"{'killed' if kill.killed else 'had finished'}, {kill.descendants} "
                    f"descendant(s), {len(kill.orphans)} alive 5 s later; re-run exit "
                    f"{again.returncode} in {rerun_s[job][-1]:.1f} s, running rows "
                    f"{facts['running_jobs']}, interrupted rows {facts['interrupted_jobs']}, "
                    f"complete {complete}",
                    flush=True,
                )
                if not complete:
                    print(again.stdout[-1500:] + again.stderr[-1500:], flush=True)
    kills = sum(v for k, v in outcomes.items() if k.startswith("killed"))
    print(
        f"\nkills {kills}, orphan processes 5 s after a kill {outcomes['orphans']}, "
        f"incomplete re-runs {sum(v for k, v in outcomes.items() if 'INCOMPLETE' in k)}"
    )
    for outcome, count in outcomes.most_common():
        if outcome != "orphans":
            print(f"  {count:3d}  {outcome}")
    for job in JOBS:
        print(
            f"{job:6s} re-run after a kill: median {np.median(rerun_s[job]):.1f} s  ratio "
            f"{np.median(rerun_s[job]) / clean_s[job]:.2f} (baseline: uninterrupted "
            f"{clean_s[job]:.1f} s)"
        )
    return violations


def _has_run(catalog: Path) -> bool:
    import duckdb

    con = duckdb.connect(str(catalog), read_only=True)
    try:
        return con.execute("SELECT count(*) FROM runs WHERE run_id = 'r'").fetchone()[0] > 0
    finally:
        con.close()


def _reset(job: str, catalog: Path, store: Path) -> None:
    """Undo a job's clean baseline run, so the killed run has all its work to do."""
    if job == "ingest":
        catalog.unlink()
        shutil.rmtree(store)
        return
    import duckdb

    con = duckdb.connect(str(catalog))
    try:
        if job == "train":
            for table in ("runs", "splits", "train_history"):
                con.execute(f"DELETE FROM {table} WHERE run_id = 'r'")
            shutil.rmtree(store / "runs" / "r", ignore_errors=True)
        elif job == "score":
            con.execute("DELETE FROM scores WHERE run_id = 'r'")
            con.execute("UPDATE runs SET threshold = NULL WHERE run_id = 'r'")
        else:
            con.execute("DELETE FROM embeddings WHERE run_id = 'r'")
            con.execute("UPDATE runs SET embed_params_json = NULL WHERE run_id = 'r'")
    finally:
        con.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--n", type=int, default=24)
    parser.add_argument("--seed", type=int, default=16)
    args = parser.parse_args()
    sys.exit(1 if main(args.rounds, args.n, args.seed) else 0)
