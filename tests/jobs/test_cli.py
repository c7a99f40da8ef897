"""`ctae` starts at once: --help imports no job module, and its listing tells the truth."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from jobs.cli import COMMANDS, app, load_command

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "pandas", "duckdb", "numpy", "SimpleITK", "pydicom", "jobs.train", "jobs.ingest")


def test_help_imports_no_job_and_no_heavy_library():
    probe = (
        "import sys\n"
        "from jobs.cli import app\n"
        "try:\n"
        "    app(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print(sorted(m for m in sys.modules if m.startswith({HEAVY!r})))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "train" in done.stdout and "Commands:" in done.stdout
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_listed_summaries_are_the_commands_own_first_lines():
    for name in COMMANDS:
        command = load_command(name)
        assert command.name == name
        first_line = (command.help or "").strip().splitlines()[0]
        assert COMMANDS[name][1] == first_line, f"COMMANDS[{name!r}] differs from its docstring"


def test_a_command_runs_through_the_lazy_group_and_typos_get_a_suggestion():
    runner = CliRunner()
    assert "--threads" in runner.invoke(app, ["train", "--help"]).output
    typo = runner.invoke(app, ["trian"])
    assert typo.exit_code == 2 and "Did you mean 'train'?" in typo.output


def test_version_names_the_package_and_the_catalog_schema_it_writes():
    from importlib.metadata import version

    from data_catalog import SCHEMA_VERSION

    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output == f"ctae {version('ctae')} (catalog schema v{SCHEMA_VERSION})\n"
