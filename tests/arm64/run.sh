#!/usr/bin/env bash
# Prove setup.sh on aarch64: run it and a short recognizer run inside an emulated Debian
# bookworm or trixie arm64 system (qemu-user + debootstrap + chroot). One command, as root:
#
#   tests/arm64/run.sh [--suite bookworm|trixie] [--json FILE] [--rebuild]
#                      [--face-model FILE | --first-model] [--keep-venv]
#
#   --suite NAME        bookworm (Python 3.11) or trixie (Python 3.13, today's Raspberry Pi OS)
#   --json FILE         also write a summary (step times, events, stats, outputs) here
#   --rebuild           throw away the cached arm64 root and debootstrap it again
#   --face-model FILE   a faces.tflite trained on the tests' known people (faces.json beside
#                       it, e.g. from ~/.cache/edge-faces-tests/): also run `edge identify`
#                       on a known person and a stranger, and recognize in the main loop
#   --first-model       the Pi-only road instead: ./setup.sh --convert, `convert backbone`,
#                       the first model made by `edge enroll` of 3 people, then identify
#   --keep-venv         keep the previous run's .venv and models/ (a re-run of later steps)
#
# Environment: ARM64_ROOT (cached root, default /var/cache/edge-faces-arm64/SUITE),
# MIRROR (Debian mirror, default: the Debian URI in the host's apt sources),
# EDGE_TEST_DATA (test data, default ../shared/data beside the checkout).
# Emulated timings say nothing about a real Pi. See docs/arm64.md.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
PROJECT=$(cd "$HERE/../.." && pwd)
SUITE=bookworm
INCLUDE=python3,python3-venv,python3-pip,ca-certificates
APP=/opt/edge-faces                       # the project's path inside the arm64 root
DATA=${EDGE_TEST_DATA:-$PROJECT/../shared/data}
PHOTO=2008_002506.jpg                     # from $DATA/detection: three faces, 56-85 px
KNOWN=Ariel_Sharon/Ariel_Sharon_0008.jpg      # $DATA/faces: held out, known (tests/splits.py)
STRANGER=Jacques_Chirac/Jacques_Chirac_0001.jpg
FIRST_PEOPLE="Ariel_Sharon Colin_Powell Donald_Rumsfeld"  # tests/splits.py: known, 7 photos each
FRAMES=60
JSON_OUT="" REBUILD=0 FACE_MODEL="" FIRST_MODEL=0 KEEP_VENV=0

while [ $# -gt 0 ]; do
  case "$1" in
    --json) JSON_OUT=${2:?--json needs a file}; shift 2 ;;
    --rebuild) REBUILD=1; shift ;;
    --face-model) FACE_MODEL=${2:?--face-model needs a file}; shift 2 ;;
    --first-model) FIRST_MODEL=1; shift ;;
    --keep-venv) KEEP_VENV=1; shift ;;
    --suite) SUITE=${2:?--suite needs bookworm or trixie}; shift 2 ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown option: $1 (see --help)" >&2; exit 2 ;;
  esac
done

say() { printf '[arm64] %s\n' "$*" >&2; }
die() { printf '[arm64] error: %s\n' "$*" >&2; exit 1; }
case "$SUITE" in bookworm|trixie) ;; *) die "--suite $SUITE: choose bookworm or trixie" ;; esac
ROOT=${ARM64_ROOT:-/var/cache/edge-faces-arm64/$SUITE}
[ -z "$FACE_MODEL" ] || [ "$FIRST_MODEL" -eq 0 ] || die "give --face-model or --first-model, not both"
[ "$(id -u)" -eq 0 ] || die "run as root (it installs packages, mounts binfmt_misc and uses chroot)"
if [ -n "$FACE_MODEL" ]; then
  [ -f "$FACE_MODEL" ] && [ -f "${FACE_MODEL%.tflite}.json" ] \
    || die "--face-model $FACE_MODEL: need the .tflite and the .json beside it"
fi
if [ -n "$FACE_MODEL" ] || [ "$FIRST_MODEL" -eq 1 ]; then
  [ -f "$DATA/faces/$KNOWN" ] && [ -f "$DATA/faces/$STRANGER" ] \
    || die "--face-model and --first-model need the test photos in $DATA/faces (set EDGE_TEST_DATA)"
fi
command -v git >/dev/null && git -C "$PROJECT" rev-parse --git-dir >/dev/null 2>&1 \
  || die "$PROJECT is not a git checkout (the project tree is copied with git ls-files)"

mkdir -p "$(dirname "$ROOT")"
exec 9>"$ROOT.lock"
flock -n 9 || { say "waiting for another run.sh that uses $ROOT"; flock 9; }

WORK=$(mktemp -d)
STEPS="$WORK/steps.tsv"
: >"$STEPS"
T_START=$(date +%s.%N)

mounts_under() {  # mount points at or below $1, deepest first
  awk -v r="$1" '$2 == r || index($2, r "/") == 1 { print $2 }' /proc/mounts | sort -r
}
unmount_root() {
  local m
  for m in $(mounts_under "$ROOT"); do umount "$m" 2>/dev/null || umount -l "$m"; done
}
cleanup() {
  unmount_root
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step() {  # step NAME COMMAND...: run it, print and record its wall time
  local name=$1 t0 t1 status=0
  shift
  say "== $name"
  t0=$(date +%s.%N)
  set +e
  (set -e; "$@")  # a subshell so that set -e holds inside the step's functions
  status=$?
  set -e
  t1=$(date +%s.%N)
  local secs
  secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
  printf '%s\t%s\t%s\n' "$name" "$secs" "$status" >>"$STEPS"
  if [ "$status" -ne 0 ]; then
    say "-- $name FAILED (exit $status) after ${secs} s"
    exit 1
  fi
  say "-- $name: ${secs} s"
}

in_root() {  # run a bash command inside the arm64 root, in the project copy, clean env
  chroot "$ROOT" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    /bin/bash -c "cd $APP && $1"
}

# --- 1. host prerequisites (idempotent) ------------------------------------------------
host_packages() {
  local missing=() pkg
  for pkg in qemu-user-static debootstrap binfmt-support debian-archive-keyring; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  command -v apt-get >/dev/null || die "missing host packages: ${missing[*]} (no apt-get)"
  say "installing host packages: ${missing[*]}"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# --- 2. binfmt_misc + qemu-aarch64 -----------------------------------------------------
binfmt() {
  local dir=/proc/sys/fs/binfmt_misc
  if ! mountpoint -q "$dir"; then
    mount -t binfmt_misc binfmt_misc "$dir" \
      || die "cannot mount binfmt_misc at $dir (in a container: run it privileged)"
  fi
  [ -e "$dir/qemu-aarch64" ] || update-binfmts --enable qemu-aarch64 \
    || die "update-binfmts --enable qemu-aarch64 failed"
  grep -qx enabled "$dir/qemu-aarch64" || echo 1 >"$dir/qemu-aarch64"
  grep -q '^flags: .*F' "$dir/qemu-aarch64" \
    || die "qemu-aarch64 is registered without the F flag: chroot cannot find the interpreter"
}

# --- 3. the cached Debian arm64 root ---------------------------------------------------
debian_mirror() {  # the first Debian (not security) URI in the host's apt sources
  local uri
  uri=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
    | awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^(https?|file):/) { print $i; break } }' \
    | grep -E '/debian/?$' | head -n1 || true)
  if [ -z "$uri" ]; then
    uri=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null \
      | awk '$1 == "URIs:" { for (i = 2; i <= NF; i++) print $i }' \
      | grep -E '/debian/?$' | head -n1 || true)
  fi
  echo "${uri:-http://deb.debian.org/debian}"
}
root_ok() {  # complete (stamp) and its Python can make a venv with pip
  [ -f "$ROOT/.edge-arm64-root" ] && [ "$(cat "$ROOT/.edge-arm64-root")" = "$SUITE $INCLUDE" ] \
    && chroot "$ROOT" /usr/bin/python3 -c 'import venv, ensurepip, ssl' 2>/dev/null
}
arm64_root() {
  local mirror=${MIRROR:-$(debian_mirror)}
  unmount_root
  if [ "$REBUILD" -eq 0 ] && root_ok; then
    say "reusing the arm64 root $ROOT"
  else
    [ -e "$ROOT" ] && say "rebuilding the arm64 root $ROOT"
    rm -rf --one-file-system "$ROOT"
    mkdir -p "$ROOT"
    say "debootstrap $SUITE arm64 from $mirror (a few minutes)"
    debootstrap --arch=arm64 --variant=minbase --include="$INCLUDE" "$SUITE" "$ROOT" "$mirror" \
      >"$WORK/debootstrap.log" 2>&1 || {
      tail -n 20 "$WORK/debootstrap.log" >&2
      unmount_root
      die "debootstrap failed (log above); the next run starts again"
    }
    unmount_root  # debootstrap may leave its own /proc or /sys mounts behind
    echo "$SUITE $INCLUDE" >"$ROOT/.edge-arm64-root"
  fi
  cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
  cp /etc/ssl/certs/ca-certificates.crt "$ROOT/etc/ssl/certs/ca-certificates.crt"
  mount --bind /proc "$ROOT/proc"  # /proc only: binding /sys crashes the TFLite runtime
  local arch
  arch=$(chroot "$ROOT" /usr/bin/uname -m)
  [ "$arch" = aarch64 ] || die "the root reports $arch, not aarch64"
  say "root: $(chroot "$ROOT" /usr/bin/python3 --version), uname -m $arch"
}

# --- 4. the current project tree (tracked files, as in the work tree) -------------------
copy_project() {
  if [ "$KEEP_VENV" -eq 1 ] && [ -d "$ROOT$APP/.venv" ]; then  # the tree only, fresh
    find "$ROOT$APP" -mindepth 1 -maxdepth 1 ! -name .venv ! -name models -exec rm -rf {} +
  else
    rm -rf --one-file-system "$ROOT$APP"
  fi
  mkdir -p "$ROOT$APP"
  git -C "$PROJECT" ls-files -z \
    | tar -C "$PROJECT" --null --ignore-failed-read -T - -cf - 2>/dev/null \
    | tar -C "$ROOT$APP" -xf -
  say "copied $(git -C "$PROJECT" ls-files | wc -l) files at $(git -C "$PROJECT" rev-parse --short HEAD)" \
    "($(git -C "$PROJECT" status --porcelain --untracked-files=no | wc -l) with uncommitted changes)"
  if [ -f "$DATA/detection/$PHOTO" ]; then
    cp "$DATA/detection/$PHOTO" "$ROOT/tmp/$PHOTO"
  else
    say "no test photo at $DATA/detection/$PHOTO: the detect check is skipped"
  fi
  if [ -n "$FACE_MODEL" ] || [ "$FIRST_MODEL" -eq 1 ]; then
    cp "$DATA/faces/$KNOWN" "$ROOT/tmp/known.jpg"
    cp "$DATA/faces/$STRANGER" "$ROOT/tmp/stranger.jpg"
  fi
  if [ "$FIRST_MODEL" -eq 1 ]; then  # each person's 7 training photos (tests/splits.py)
    local name
    rm -rf "$ROOT/tmp/people"
    for name in $FIRST_PEOPLE; do
      mkdir -p "$ROOT/tmp/people/$name"
      ls "$DATA/faces/$name"/*.jpg | sort | head -n 7 | xargs cp -t "$ROOT/tmp/people/$name"
    done
    rm -f "$ROOT$APP/models/faces".* "$ROOT$APP/models/.faces"* "$ROOT$APP/models/backbone".*
    rm -rf "$ROOT$APP/dataset"
  fi
}

# --- picamera2 (trixie): apt's package seen from a --system-site-packages venv ----------
picamera2_check() {  # as setup.sh makes the venv on a Pi: apt's picamera2 + pip's numpy
  in_root "apt-get update -qq >/dev/null"
  if ! in_root "apt-cache show python3-picamera2 >/dev/null 2>&1"; then
    echo "python3-picamera2 is not in Debian $SUITE's archive (Raspberry Pi OS adds it from archive.raspberrypi.com): not checked" >"$WORK/picamera2.out"
    return 0
  fi
  in_root "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-picamera2 >/dev/null"
  in_root "rm -rf /tmp/sysvenv && python3 -m venv --system-site-packages /tmp/sysvenv \
    && /tmp/sysvenv/bin/pip install -q --disable-pip-version-check \$(.venv/bin/python -c 'import numpy; print(\"numpy==\" + numpy.__version__)') \
    && /tmp/sysvenv/bin/python -c 'import numpy, picamera2; print(\"picamera2\", picamera2.__file__, \"numpy\", numpy.__version__, numpy.__file__)'" \
    >"$WORK/picamera2.out"
}

# --- 5-9. inside the arm64 root ----------------------------------------------------------
run_edge() {  # run_edge NAME ARGS...: python -m edge ARGS, stdout kept in $WORK/NAME.out
  local name=$1
  shift
  in_root ".venv/bin/python -m edge $*" >"$WORK/$name.out"
}

step "host packages" host_packages
step "binfmt qemu-aarch64" binfmt
step "arm64 root" arm64_root
step "copy project" copy_project
step "setup.sh" in_root ./setup.sh
step "setup.sh again" in_root ./setup.sh
step "edge --help" run_edge help --help
if [ -f "$ROOT/tmp/$PHOTO" ]; then
  step "edge detect res10" run_edge res10 detect --confirmer res10 "/tmp/$PHOTO"
  say "detect (res10, OpenCV dnn): $(cat "$WORK/res10.out")"
  step "edge detect blazeface" run_edge blazeface detect --confirmer blazeface "/tmp/$PHOTO"
  say "detect (BlazeFace, TFLite): $(cat "$WORK/blazeface.out")"
fi
if [ "$FIRST_MODEL" -eq 1 ]; then  # the Pi-only road: training tools, backbone, first model
  step "setup.sh --convert" in_root "./setup.sh --convert"
  step "convert backbone" in_root ".venv/bin/python -m convert backbone >/tmp/backbone.out"
  cp "$ROOT$APP/models/backbone.tflite" "$ROOT$APP/models/backbone.json" "$ROOT/tmp/backbone.out" "$WORK/"
  n=0
  for name in $FIRST_PEOPLE; do
    n=$((n + 1))
    step "edge enroll ($n)" run_edge "enroll$n" enroll "$name" "/tmp/people/$name"
    say "enroll $name: $(cat "$WORK/enroll$n.out")"
  done
  step "edge identify" run_edge identify identify /tmp/known.jpg /tmp/stranger.jpg
  say "identify ($KNOWN, $STRANGER) with the model made here:"
  cat "$WORK/identify.out" >&2
fi
if [ "$SUITE" = trixie ]; then
  step "picamera2 import" picamera2_check
  say "picamera2: $(cat "$WORK/picamera2.out")"
fi
if [ -n "$FACE_MODEL" ]; then  # after setup.sh, as a user copies it from the PC
  cp "$FACE_MODEL" "$ROOT$APP/models/faces.tflite"
  cp "${FACE_MODEL%.tflite}.json" "$ROOT$APP/models/faces.json"
  step "edge identify" run_edge identify identify /tmp/known.jpg /tmp/stranger.jpg
  say "identify ($KNOWN, $STRANGER):"
  cat "$WORK/identify.out" >&2
fi
rm -f "$ROOT/tmp/stats.json"
step "edge ($FRAMES frames)" run_edge events --max-frames "$FRAMES" --stats-json /tmp/stats.json
say "events ($(wc -l <"$WORK/events.out")):"
cat "$WORK/events.out" >&2
[ -s "$ROOT/tmp/stats.json" ] || die "python -m edge wrote no --stats-json file"
cp "$ROOT/tmp/stats.json" "$WORK/stats.json"
say "stats: $(tr -d '\n' <"$WORK/stats.json")"

TOTAL=$(awk -v a="$T_START" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
say "== times (emulated aarch64 on $(uname -m); they say nothing about a real Pi)"
awk -F'\t' '{ printf "[arm64]   %-22s %7s s\n", $1, $2 }' "$STEPS" >&2
say "  total                  $TOTAL s"
FRAMES=$FRAMES python3 "$HERE/summary.py" "$WORK" "$TOTAL" "$(chroot "$ROOT" /usr/bin/python3 --version) ($SUITE)" \
  "$(git -C "$PROJECT" rev-parse HEAD)" ${JSON_OUT:+"$JSON_OUT"} || die "the runs inside the arm64 root did not do their job"
[ -z "$JSON_OUT" ] || say "summary written to $JSON_OUT"
say "ok: setup.sh and python -m edge work on emulated aarch64"
