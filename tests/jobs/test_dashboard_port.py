"""A port already in use: `ctae dashboard` says so and which one is free (Streamlit alone logged
"Port N is not available" and ended with code 0); `ctae demo` serves on the next free port."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from jobs.dashboard import free_port, port_free

ROOT = Path(__file__).resolve().parents[2]


def _listening() -> socket.socket:
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen()
    return server


def test_a_port_in_use_is_refused_with_a_free_one_named(tmp_path):
    with _listening() as server:
        port = server.getsockname()[1]
        assert not port_free("127.0.0.1", port)
        other = free_port("127.0.0.1", port)
        assert other is not None and other > port and port_free("127.0.0.1", other)
        done = subprocess.run([sys.executable, "-m", "jobs", "dashboard", "--no-browser", "--port", str(port),
                               "--catalog", str(tmp_path / "catalog.duckdb")],
                              capture_output=True, text=True, timeout=120,
                              env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})  # fmt: skip
    said = " ".join(done.stderr.split())
    assert done.returncode == 2, done.stderr
    assert f"port {port} on 127.0.0.1 is in use" in said and f"pass --port {other}, which is free" in said
    assert "ctae dashboard on http" not in done.stdout  # no server was started


def test_the_demo_serves_on_the_next_free_port_when_8501_is_taken(monkeypatch):
    import jobs.demo as demo
    from data_catalog import CatalogSettings

    with _listening() as server:
        taken = server.getsockname()[1]
        monkeypatch.setattr(demo, "DEFAULT_PORT", taken)
        ran = []
        monkeypatch.setattr(demo.subprocess, "run", lambda args, check: ran.append(args) or subprocess.CompletedProcess(args, 0))
        demo._serve(CatalogSettings.resolve("c.duckdb", env={}), None, open_browser=False)
    (args,) = ran
    served = int(args[args.index("--port") + 1])
    assert served > taken and served == free_port("127.0.0.1", taken + 1)


def test_an_address_this_machine_does_not_have_is_named_as_such(tmp_path):
    # until stop 56 it was called a port in use, and a free port was offered on it
    from typer.testing import CliRunner

    from jobs.cli import app

    # (a name's failure reads "Name or service not known" here, or a resolver's own words)
    for host, why in (("10.9.9.9", "Cannot assign requested address"), ("nosuchhost.invalid", "")):
        result = CliRunner().invoke(app, ["dashboard", "--no-browser", "--host", host,
                                          "--catalog", str(tmp_path / "catalog.duckdb")])
        said = " ".join(result.output.split())
        assert result.exit_code == 2, result.output
        assert f"Invalid value for --host: {host} is not an address of this machine ({why}" in said
        assert "pass 127.0.0.1 (this machine only), 0.0.0.0 (every address it has)" in said
        assert "in use" not in said


def test_the_demo_refuses_a_port_in_use_and_too_small_a_cohort_before_any_job(tmp_path):
    # until stop 56 a taken --port was found after the jobs' minutes, and --n 0 built the
    # default 360 scans
    from typer.testing import CliRunner

    from jobs.cli import app

    workdir = tmp_path / "demo"
    with _listening() as server:
        port = server.getsockname()[1]
        taken = CliRunner().invoke(app, ["demo", "--workdir", str(workdir), "--port", str(port)])
    assert taken.exit_code == 2 and f"port {port} on 127.0.0.1 is in use" in " ".join(taken.output.split())
    for n in ("0", "5"):
        small = CliRunner().invoke(app, ["demo", "--workdir", str(workdir), "--n", n])
        said = " ".join(small.output.split())
        assert small.exit_code == 2 and f"--n must be at least 20, not {n}" in said, small.output
    assert not workdir.exists()  # no stage ran
