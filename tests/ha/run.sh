#!/usr/bin/env bash
# The Home Assistant test in one command: set up .venv-ha if needed, then run it.
#   tests/ha/run.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/../.."
tests/ha/setup.sh
exec .venv/bin/python -m pytest -m ha tests/ha -p no:cacheprovider "$@"
