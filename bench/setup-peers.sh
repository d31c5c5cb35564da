#!/usr/bin/env bash
# Install the systems bench/peers.py compares us with into a separate venv, .venv-peers
# (never into the project's .venv):
#   - face_recognition 1.3.0 on dlib from the prebuilt `dlib-bin` wheels (no compiler),
#     its weights from `face-recognition-models`;
#   - `mtcnn` 1.0 (ships its weights; runs on TensorFlow) for the seed tutorial's approach;
#   - OpenCV 4.x, numpy, matplotlib (the plot), psutil.
# OpenCV's FaceDetectorYN/FaceRecognizerSF are left out: no registry package ships YuNet or
# SFace .onnx files (alchemyface, detekface, moca-face-matcher, unicorner-face-detector
# all download them from the OpenCV model zoo at run time).
# Idempotent: a second run checks the imports and exits in a few seconds.
#
# Environment: PYTHON (interpreter for the venv, default python3).
set -euo pipefail

cd "$(dirname "$0")/.."
VENV="$(pwd)/.venv-peers"
PYTHON=${PYTHON:-python3}
say() { printf '[setup-peers] %s\n' "$*" >&2; }

# Pinned so that reruns compare the same peers; bump deliberately.
PACKAGES=(
  "dlib-bin==20.0.1.post1"
  "face-recognition-models==0.3.0"
  "Click>=6.0"
  "Pillow"
  "mtcnn==1.0.0"
  "tensorflow-cpu==2.21.0"
  "opencv-python-headless>=4.8,<5"
  "numpy"
  "matplotlib"
  "psutil"
)
STAMP="$VENV/.peers-installed"
WANT=$(printf '%s\n' "${PACKAGES[@]}" "face_recognition==1.3.0")

check() {
  "$VENV/bin/python" - <<'EOF' 2>/dev/null
from importlib.metadata import version
import cv2, dlib, face_recognition, face_recognition_models, matplotlib, mtcnn, numpy, psutil
assert version("face_recognition") == "1.3.0"
assert int(cv2.__version__.split(".")[0]) == 4
EOF
}
export TF_CPP_MIN_LOG_LEVEL=3

if [ -x "$VENV/bin/python" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] && check; then
  say "already installed in $VENV"
  exit 0
fi

if [ ! -x "$VENV/bin/python" ]; then
  say "creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
pip_install() {  # pip, minus its warnings about this machine's unused local indexes
  local log rc=0
  log=$(mktemp)
  "$VENV/bin/python" -m pip --disable-pip-version-check -q install "$@" >"$log" 2>&1 || rc=$?
  grep -v "is ignored: it is neither a file nor a directory" "$log" >&2 || true
  rm -f "$log"
  return "$rc"
}
say "installing peers (TensorFlow and the dlib weights are large: a few minutes the first time)"
pip_install "${PACKAGES[@]}"
# face_recognition declares a dependency on `dlib`, which would build from source: dlib-bin
# provides the same module, so install it without dependencies.
pip_install --no-deps "face_recognition==1.3.0"
check || { say "error: the peers' packages do not import in $VENV"; exit 1; }
printf '%s\n' "$WANT" >"$STAMP"
say "ready: $VENV"
