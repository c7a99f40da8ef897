#!/usr/bin/env bash
# Creates .venv (Python 3.11+) and installs ctae into it. Safe to re-run: it reinstalls only
# when pyproject.toml changed. torch is pinned first so that pip never pulls a CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.ctae-installed
want="$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -c "import torch" 2>/dev/null || .venv/bin/python -m pip install -q "torch==${CTAE_TORCH_VERSION:-2.13.0}"
  .venv/bin/python -m pip install -q -e '.[dev,ray]'
  echo "$want" > "$stamp"
fi
