#!/usr/bin/env bash
# The README's main command: sets up .venv, then runs the whole demo (cohort → ingest → train →
# score → embed → evaluate → dashboard). Extra arguments go to `ctae demo`, e.g. --no-browser.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/ctae demo "$@"
