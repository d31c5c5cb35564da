#!/usr/bin/env bash
# Create .venv-ha: Home Assistant 2024.3.3 (Python 3.11) with the pinned requirements of the
# integrations the `ha` test loads. Idempotent: a second run takes a second.
#   tests/ha/setup.sh          (PYTHON311=/path/to/python3.11 to choose the interpreter)
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=.venv-ha
REQ=tests/ha/requirements.txt
PY=${PYTHON311:-python3.11}
say() { printf '[ha-setup] %s\n' "$*" >&2; }
command -v "$PY" >/dev/null || { say "error: $PY not found (Home Assistant 2024.3 needs Python 3.11; set PYTHON311)"; exit 2; }
STAMP="$VENV/.edge-ha-$(sha256sum "$REQ" | cut -c1-16)"
[ -e "$STAMP" ] && exit 0
[ -x "$VENV/bin/python" ] || { say "creating $VENV"; "$PY" -m venv "$VENV"; }
say "installing Home Assistant and its pinned requirements (a few minutes the first time)"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$REQ" 2>&1 \
  | grep -v "is neither a file nor a directory" >&2 || true
"$VENV/bin/python" -c 'import homeassistant.const as c, paho.mqtt, PIL, josepy; assert c.__version__ == "2024.3.3", c.__version__' \
  || { say "error: $VENV is incomplete (see the pip output above)"; exit 1; }
rm -f "$VENV"/.edge-ha-*
touch "$STAMP"
say "ready: $VENV"
