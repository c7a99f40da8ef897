#!/usr/bin/env bash
# The README's test command: sets up .venv, installs a browser where it can, runs the suite
# and the smallest end-to-end pipeline (`ctae demo --check`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ ! -x /usr/bin/chromium ] && [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
  echo "installing Debian's chromium for the browser test ..."
  (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) \
    || echo "could not install chromium: the browser test will be skipped"
fi
export PYTHONUNBUFFERED=1
# two worker processes (CTAE_TEST_WORKERS; 0 runs in this process); a file's tests share a worker
.venv/bin/python -m pytest -q -ra -n "${CTAE_TEST_WORKERS:-2}" --dist loadfile "$@"
# the check's own cohort is removed afterwards unless CTAE_CHECK_DIR names where to keep it
check_dir="${CTAE_CHECK_DIR:-}"
if [ -z "$check_dir" ]; then
  check_dir="$(mktemp -d)"
  trap 'rm -rf "$check_dir"' EXIT
fi
.venv/bin/ctae demo --check --workdir "$check_dir"
