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
  # a fresh .venv takes about 3 GB (torch, SimpleITK, ray, pyarrow); pip fails late and unclearly
  # when the disk fills, so say it first
  need_kb=$((4 * 1024 * 1024))
  free_kb="$(df -Pk .venv | awk 'NR==2 {print $4}')"
  if [ ! -f "$stamp" ] && [ "${free_kb:-0}" -lt "$need_kb" ]; then
    echo "ctae setup: $(pwd)/.venv needs about 4 GB free and $((free_kb / 1024)) MB are free." >&2
    echo "Free some space on that disk (old catalogs, /tmp), then run this again." >&2
    exit 1
  fi
  # no pip cache: it would keep a second copy of every wheel on the same disk
  export PIP_NO_CACHE_DIR=1
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -c "import torch" 2>/dev/null || .venv/bin/python -m pip install -q "torch==${CTAE_TORCH_VERSION:-2.13.0}"
  .venv/bin/python -m pip install -q -e '.[dev,ray]'
  echo "$want" > "$stamp"
fi
