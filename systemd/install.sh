#!/usr/bin/env bash
# Install, enable and start edge-faces as the systemd service `edge` (run by
# ./setup.sh --install-service, or directly). Idempotent: a second run changes only what
# differs and restarts the service.
#
#   systemd/install.sh              install or update, enable, (re)start
#   systemd/install.sh --uninstall  stop, disable, remove the unit (keeps config and state)
#
# Environment: EDGE_USER (service user, default edge).
# Writes: /etc/systemd/system/edge.service, /etc/edge-faces/config.yaml (only when absent),
# /etc/edge-faces/environment (only when absent), user and group $EDGE_USER.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
SERVICE_USER=${EDGE_USER:-edge}
UNIT=/etc/systemd/system/edge.service
CONF_DIR=/etc/edge-faces
CONF="$CONF_DIR/config.yaml"
ENV_FILE="$CONF_DIR/environment"
STATE_DIR=/var/lib/edge-faces

say() { printf '[install] %s\n' "$*" >&2; }
die() { printf '[install] error: %s\n' "$*" >&2; exit 1; }
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"

command -v systemctl >/dev/null || die "systemctl not found: this needs a systemd system (Raspberry Pi OS, Debian, Ubuntu)"
RUNNING=1
[ -d /run/systemd/system ] || RUNNING=0   # systemd is not PID 1 (a container or chroot)

if [ "${1:-}" = "--uninstall" ]; then
  if [ "$RUNNING" -eq 1 ]; then
    $SUDO systemctl disable --now edge.service 2>/dev/null || true
  fi
  $SUDO rm -f "$UNIT"
  [ "$RUNNING" -eq 1 ] && $SUDO systemctl daemon-reload
  say "removed $UNIT (kept $CONF_DIR, $STATE_DIR and user $SERVICE_USER)"
  exit 0
fi
[ $# -eq 0 ] || die "unknown option: $1 (use --uninstall or nothing)"

case "$ROOT" in
  *[[:space:]]*) die "the checkout path '$ROOT' contains whitespace: move it (e.g. to /home/pi/edge-faces)" ;;
esac
[ -x "$ROOT/.venv/bin/python" ] || die "$ROOT/.venv is missing: run ./setup.sh first"

# The service user reads the checkout, venv and models (and the venv's base Python when it
# is not the system's, e.g. pyenv) through read-only bind mounts, so they must be readable
# by others (the default umask 022 does that).
PYBASE=$("$ROOT/.venv/bin/python" -c 'import sys; print(sys.base_prefix)')
READONLY="$ROOT"
case "$PYBASE" in /usr|/usr/*) PYBASE="" ;; *) READONLY="$ROOT $PYBASE" ;; esac
unreadable=$(find "$ROOT/edge" "$ROOT/models" "$ROOT/.venv" $PYBASE \
  \( -type d ! -perm -o=rx -o -type f ! -perm -o=r \) -print 2>/dev/null | head -n 3)
[ -z "$unreadable" ] || die "not readable by the service user: $(echo "$unreadable" | tr '\n' ' ')(fix: chmod -R o+rX $ROOT/edge $ROOT/models $ROOT/.venv)"

# --- user -----------------------------------------------------------------------------
getent group video >/dev/null || $SUDO groupadd --system video
if ! id -u "$SERVICE_USER" >/dev/null 2>&1; then
  say "creating system user $SERVICE_USER (group video)"
  $SUDO useradd --system --user-group --groups video --home-dir "$STATE_DIR" --no-create-home \
    --shell /usr/sbin/nologin --comment "edge-faces service" "$SERVICE_USER"
elif ! id -nG "$SERVICE_USER" | tr ' ' '\n' | grep -qx video; then
  $SUDO usermod -aG video "$SERVICE_USER"
fi

# On-device enrolment: the service rewrites models/ and keeps photos in dataset/, so both
# belong to its group (setgid folders: files copied in later stay the group's).
mkdir -p "$ROOT/models" "$ROOT/dataset"
$SUDO chgrp -R "$SERVICE_USER" "$ROOT/models" "$ROOT/dataset"
$SUDO chmod -R g+rwX "$ROOT/models" "$ROOT/dataset"
$SUDO find "$ROOT/models" "$ROOT/dataset" -type d -exec chmod g+s {} +

# --- config ---------------------------------------------------------------------------
IS_PI=0
grep -qs "Raspberry Pi" /proc/device-tree/model && IS_PI=1
$SUDO install -d -m 0750 -o root -g "$SERVICE_USER" "$CONF_DIR"
if $SUDO test -f "$CONF"; then
  say "keeping $CONF"
else
  # The project's config.yaml with absolute paths: models stay in the checkout, unknown
  # faces go to the state directory, a Pi uses its camera.
  tmp=$(mktemp)
  sed -E \
    -e "s#^(\s+[a-z0-9_]+: )models/#\1$ROOT/models/#" \
    -e "s#^(\s+dir: )unknown_faces\b#\1$STATE_DIR/unknown_faces#" \
    -e "s#^(\s+dataset: )dataset\b#\1$ROOT/dataset#" \
    "$ROOT/config.yaml" >"$tmp"
  if [ "$IS_PI" -eq 1 ]; then
    sed -i -E "s#^(\s+source: )\S+#\1picamera2#" "$tmp"
  fi
  $SUDO install -m 0640 -o root -g "$SERVICE_USER" "$tmp" "$CONF"
  rm -f "$tmp"
  say "wrote $CONF (set mqtt.host there for Home Assistant)"
fi
$SUDO "$ROOT/.venv/bin/python" -c 'import sys; from edge.config import load_config, ConfigError
try:
    load_config(sys.argv[1])
except ConfigError as exc:
    sys.exit(f"[install] error: {exc}")' "$CONF" ||
  die "fix $CONF and run this again (no face model yet? make the int8 backbone once with \`.venv/bin/python -m convert backbone\` (docs/pi-only.md), or train one on a PC with \`python -m convert train\` and copy models/faces.tflite and faces.json here, or set recognize.model: \"\" for detection only)"
if ! $SUDO test -f "$ENV_FILE"; then
  printf '# Secrets for the edge service (root-only). For example:\n# EDGE_MQTT_PASSWORD=secret\n' |
    $SUDO install -m 0600 -o root -g root /dev/stdin "$ENV_FILE"
fi

# --- unit -----------------------------------------------------------------------------
tmpdir=$(mktemp -d)
tmp="$tmpdir/edge.service"
sed -e "s#@ROOT@#$ROOT#g" -e "s#@READONLY@#$READONLY#g" -e "s#@USER@#$SERVICE_USER#g" \
  "$ROOT/systemd/edge.service" >"$tmp"
if command -v systemd-analyze >/dev/null; then
  systemd-analyze verify "$tmp" >&2 || say "systemd-analyze verify complained (above)"
fi
if $SUDO cmp -s "$tmp" "$UNIT"; then
  say "$UNIT is up to date"
else
  $SUDO install -m 0644 "$tmp" "$UNIT"
  say "installed $UNIT"
fi
rm -rf "$tmpdir"

if [ "$RUNNING" -eq 0 ]; then
  say "systemd is not running here: installed but not started"
  exit 0
fi
$SUDO systemctl daemon-reload
$SUDO systemctl enable edge.service 2>/dev/null
$SUDO systemctl reset-failed edge.service 2>/dev/null || true
$SUDO systemctl restart edge.service
sleep 3
state=$(systemctl is-active edge.service || true)
say "edge.service is $state (starts at boot)"
cat >&2 <<EOF
[install] logs:     journalctl -u edge -f
[install] status:   systemctl status edge
[install] reload:   sudo systemctl reload edge   (config and model, keeps MQTT connected)
[install] config:   $CONF   secrets: $ENV_FILE
EOF
result=$(systemctl show -p Result --value edge.service || true)
if [ "$result" != "success" ]; then
  journalctl -u edge -n 20 --no-pager >&2 || true
  die "edge.service failed ($result): see the log above"
fi
