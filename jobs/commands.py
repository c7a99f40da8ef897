"""The `ctae` commands, declared once: the entry point (``jobs.launch``) and the typer
application (``jobs.cli``) both read them, and this module imports nothing, so neither pays for
the other's imports."""

from __future__ import annotations

COMMANDS: dict[str, tuple[str, str]] = {
    "ingest": ("jobs.ingest", "Ingest CT scans: HU volumes at isotropic spacing into the store, facts into the catalog."),
    "demo-data": ("jobs.demo_data", "Write a cohort with planted outliers as DICOM series: synthetic CCTA or, with --base, real anatomy."),
    "train": ("jobs.train", "Train the 3D autoencoder on the ingested scans (split, normalise, pad, fit, checkpoint)."),
    "score": ("jobs.score", "Reconstruct every scan, store MSE / MSE_m / latents / error volumes, set T and flag."),
    "embed": ("jobs.embed", "UMAP the run's latent vectors to 2D and cluster them with DBSCAN."),
    "evaluate": ("jobs.evaluate", "AUROC / AP / precision, recall and false alarms at T / size bias, beside two baselines."),
    "remove": ("jobs.remove", "Remove scans from the catalog, with every run's rows of them and their stored files."),
    "status": ("jobs.status", "Show what the catalog holds, how far each run got, the jobs running and what to run next."),
    "export": ("jobs.export", "Export a snapshot of a run's scans that pass the filters (logged, with a manifest)."),
    "dashboard": ("jobs.dashboard", "Start the triage dashboard on the catalog; Ctrl+C stops it."),
    "demo": ("jobs.demo", "Build the demo cohort, run every job on it and open the dashboard (`--check`: verify only)."),
    "users": ("jobs.users", "Accounts that may sign in to the dashboard (kept in users.json beside the catalog, or $CTAE_USERS)."),
}
"""Command name -> (job module, the first line of the command's docstring, shown by --help)."""

FAST_COMMANDS: dict[str, str] = {"ingest": "ingest_command", "train": "train_command"}
"""Commands that ``jobs.launch`` parses itself -> their job module's typer command function."""

LAUNCHERS: frozenset[str] = frozenset({"demo"})
"""Commands that run no torch of their own but other `ctae` commands as processes, each of which
chooses its OpenMP wait policy as it starts (``jobs.threads.prefer_passive_openmp``): a demo
begun beside a busy process does not hand its stages sleeping threads once the machine is idle."""
