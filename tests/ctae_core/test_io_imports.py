"""Reading DICOM loads pydicom without `requests`, and `requests` still imports afterwards."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_pydicom_loads_without_requests_which_still_imports_later():
    probe = (
        "import sys\n"
        "from ctae_core.io.sources import discover_sources\n"
        "import pydicom, pydicom.data.download as download\n"
        "print(pydicom.__version__, 'requests' in sys.modules, download.HAVE_REQUESTS)\n"
        "import requests\n"
        "print(requests.get.__module__)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True,
                          text=True, env={"PYTHONPATH": str(ROOT)}, timeout=60)
    assert done.returncode == 0, done.stderr
    version, loaded, have_requests = done.stdout.splitlines()[0].split()
    assert version.startswith("3.")  # the pydicom range of pyproject.toml: >=3.0,<4
    assert (loaded, have_requests) == ("False", "False")
    assert done.stdout.splitlines()[1] == "requests.api"
