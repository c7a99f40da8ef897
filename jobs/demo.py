"""`ctae demo`: from nothing to a triage session — cohort, ingest, train, score, embed,
evaluate, dashboard — reusing whatever an earlier run already made."""

from __future__ import annotations

import csv
import logging
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from ctae_core.config import DEFAULT_PRESET
from data_catalog import CatalogSettings, connect
from data_catalog.status import PipelineStatus, pipeline_status
from jobs.options import CatalogOption, refuse_file_in_the_way

logger = logging.getLogger(__name__)

RUN_ID = "demo"
APP_PATH = Path(__file__).resolve().parents[1] / "dashboard" / "app.py"


@dataclass(frozen=True)
class DemoPlan:
    """Sizes of one demo: the full demo, or the smallest pipeline that still checks every stage."""

    n_scans: int
    outlier_rate: float
    epochs: int | None  # None: the preset's own
    seed: int = 0

    @classmethod
    def for_mode(cls, check: bool, n_scans: int | None) -> DemoPlan:
        if check:
            return cls(n_scans=n_scans or 40, outlier_rate=0.15, epochs=2)
        return cls(n_scans=n_scans or 360, outlier_rate=0.05, epochs=None)


def _ctae(*args: str) -> None:
    """Run one ctae job in a child process, its progress streaming to this terminal."""
    command = [sys.executable, "-m", "jobs", *args]
    logger.info("stage: ctae %s", " ".join(args))
    started = time.monotonic()
    result = subprocess.run(command, check=False)
    if result.returncode != 0:
        raise typer.Exit(
            _fail(f"`ctae {' '.join(args)}` exited with {result.returncode}; see its output above. "
                  "Fix the cause and re-run `ctae demo`: finished stages are reused.")
        )
    logger.info("stage done in %.1f s", time.monotonic() - started)


def _fail(message: str) -> int:
    typer.secho(message, fg=typer.colors.RED, err=True)
    return 1


def _status(settings: CatalogSettings) -> PipelineStatus:
    with connect(settings.catalog_path) as con:
        return pipeline_status(con, RUN_ID)


def _cohort_size(cohort_dir: Path) -> int:
    truth = cohort_dir / "ground_truth.csv"
    if not truth.exists():
        return 0
    with truth.open(newline="") as handle:
        return sum(1 for _ in csv.DictReader(handle))


def run_pipeline(workdir: Path, plan: DemoPlan, settings: CatalogSettings) -> PipelineStatus:
    """Run every stage that has not produced its output yet; return what the catalog holds."""
    cohort = workdir / "cohort"
    common = ["--catalog", str(settings.catalog_path)]
    store = ["--store", str(settings.store_dir)]
    if _cohort_size(cohort) < plan.n_scans:
        _ctae("demo-data", str(cohort), "--n", str(plan.n_scans), "--seed", str(plan.seed),
              "--outlier-rate", str(plan.outlier_rate))
    status = _status(settings)
    if status.scans + status.ingest_errors < _cohort_size(cohort):
        _ctae("ingest", str(cohort), *common, *store)
        status = _status(settings)
    if not status.trained:
        train = ["train", *common, *store, "--run", RUN_ID, "--preset", DEFAULT_PRESET,
                 "--seed", str(plan.seed)]
        if plan.epochs is not None:
            train += ["--epochs", str(plan.epochs)]
        if status.run_status is not None:  # killed or failed earlier: continue its checkpoint
            train.append("--resume")
        _ctae(*train)
    scored_now = not _status(settings).scored_all
    if scored_now:
        _ctae("score", *common, *store, "--run", RUN_ID)
    status = _status(settings)
    if status.embedded < status.scored:
        _ctae("embed", *common, "--run", RUN_ID, "--seed", str(plan.seed))
    if scored_now or _status(settings).evaluations == 0:
        _ctae("evaluate", *common, "--run", RUN_ID, "--truth", str(cohort / "ground_truth.csv"))
    return _status(settings)


def check_outputs(status: PipelineStatus) -> list[tuple[str, bool, str]]:
    """Each thing the dashboard needs, whether the catalog has it, and the evidence."""
    return [
        ("scans ingested", status.scans > 0, f"{status.scans} scans, {status.ingest_errors} refused"),
        ("run trained", status.trained, f"run status {status.run_status}"),
        ("every scan scored", status.scored_all, f"{status.scored} scored, {status.unscored} not"),
        ("threshold T set", status.threshold is not None, f"T = {status.threshold}"),
        ("viewer volumes", status.with_volumes == status.scored > 0,
         f"{status.with_volumes} recon/error pairs"),
        ("latent vectors", status.with_latents == status.scored > 0, f"{status.with_latents}"),
        ("UMAP + DBSCAN", status.embedded == status.scored > 0, f"{status.embedded} points"),
        ("evaluation", status.evaluations > 0, f"{status.evaluations} rows"),
    ]


def check_dashboard(settings: CatalogSettings) -> tuple[str, bool, str]:
    """Render the dashboard headless once on this catalog: it must show no exception."""
    import logging
    import os

    from streamlit.testing.v1 import AppTest

    # "missing ScriptRunContext! This warning can be ignored when running in bare mode": the
    # headless render's own words, which ended the check's output above its verdict
    logging.getLogger("streamlit.runtime.scriptrunner_utils.script_run_context").setLevel(logging.ERROR)
    os.environ["CTAE_CATALOG"] = str(settings.catalog_path)
    app = AppTest.from_file(str(APP_PATH), default_timeout=60).run()
    errors = [e.value for e in app.exception]
    return ("dashboard renders", not errors, "; ".join(map(str, errors))[:200] or "no exception")


DEFAULT_PORT = 8501
MIN_SCANS = 20
MIN_SCANS_WHY = ("a smaller cohort plants no outlier at the demo's rate of 5 % and leaves no "
                 "validation split to set T on")


def _serve(settings: CatalogSettings, port: int | None, open_browser: bool) -> None:
    """Serve the demo's catalog: on ``port``, or without one on the first free port from
    ``DEFAULT_PORT`` (another Streamlit app often holds 8501). Ends with the dashboard's code."""
    from jobs.dashboard import free_port

    if port is None:
        port = free_port("127.0.0.1", DEFAULT_PORT) or DEFAULT_PORT
        if port != DEFAULT_PORT:
            typer.echo(f"port {DEFAULT_PORT} is in use: serving on {port}")
    args = ["dashboard", "--catalog", str(settings.catalog_path), "--port", str(port)]
    if not open_browser:
        args.append("--no-browser")
    typer.echo(f"\nDashboard: http://127.0.0.1:{port}/?run={RUN_ID}  (Ctrl+C stops it)")
    served = subprocess.run([sys.executable, "-m", "jobs", *args], check=False)
    if served.returncode not in (0, -2, 130):  # not Ctrl+C: the dashboard said why
        raise typer.Exit(served.returncode)


def demo(
    workdir: Annotated[Path, typer.Option(help="Where the cohort, catalog and store go.")] = Path(
        "ctae-demo"
    ),
    n: Annotated[int | None, typer.Option("--n", help="Scans in the cohort (default 360; 40 with --check).")] = None,
    check: Annotated[bool, typer.Option("--check", help="Smallest pipeline; exit 0 only if every stage delivered.")] = False,
    no_browser: Annotated[bool, typer.Option("--no-browser", help="Serve headless; do not open a browser.")] = False,
    no_serve: Annotated[bool, typer.Option("--no-serve", help="Stop after the jobs; do not start the dashboard.")] = False,
    port: Annotated[int | None, typer.Option(help="Dashboard port (default: 8501, else the next free one).", show_default=False)] = None,
    catalog: CatalogOption = None,
) -> None:
    """Build the demo cohort, run every job on it and open the dashboard (`--check`: verify only)."""
    workdir = workdir.resolve()
    refuse_file_in_the_way(workdir, "--workdir")
    if n is not None and n < MIN_SCANS:  # --n 0 built the default 360 until stop 56
        raise typer.BadParameter(f"--n must be at least {MIN_SCANS}, not {n}: {MIN_SCANS_WHY}")
    if port is not None and not (no_serve or check):  # said after the jobs' minutes until stop 56
        from jobs.dashboard import check_port

        check_port("127.0.0.1", port)
    settings = CatalogSettings.resolve(catalog or workdir / "catalog.duckdb", workdir / "store")
    plan = DemoPlan.for_mode(check, n)
    started = time.monotonic()
    status = run_pipeline(workdir, plan, settings)
    typer.echo(f"\npipeline ready in {time.monotonic() - started:.0f} s (workdir {workdir})")
    if check:
        rows = [*check_outputs(status), check_dashboard(settings)]
        for name, ok, evidence in rows:
            typer.echo(f"  [{'ok' if ok else 'FAIL'}] {name}: {evidence}")
        failed = [name for name, ok, _ in rows if not ok]
        if failed:
            raise typer.Exit(_fail(f"demo check failed: {', '.join(failed)}"))
        typer.echo("demo check passed")
        return
    if not no_serve:
        _serve(settings, port, open_browser=not no_browser)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
