#!/usr/bin/env bash
# Set up SpeechInt on Debian/Ubuntu with Python 3.11: system packages, a virtualenv in .venv,
# the Python packages (CPU torch), and the bundled default model (tiny.en, converted offline).
#   bash scripts/setup.sh         # what the app needs, with its training toolkit (the `train` extra)
#   bash scripts/setup.sh --dev   # plus what the tests need (sox, Xvfb, PulseAudio, pytest, Ray, ...)
# Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

DEV=0
for arg in "$@"; do
  case "$arg" in
    --dev) DEV=1 ;;
    *) echo "usage: bash scripts/setup.sh [--dev]" >&2; exit 2 ;;
  esac
done

PY=${PYTHON:-python3}
# torch: the CPU build. Override with e.g. TORCH_SPEC="torch==2.13.0" and PIP_INDEX_URL for CUDA.
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}

apt_pkgs=(espeak-ng libportaudio2 libgl1 libegl1 libfontconfig1 libglib2.0-0 libxkbcommon0 libdbus-1-3
  libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0
  libxcb-shape0 libxcb-xkb1)
if [ "$DEV" = 1 ]; then
  apt_pkgs+=(sox libsox-fmt-all xvfb pulseaudio pulseaudio-utils libasound2-plugins imagemagick)
fi
if ! "$PY" -c "import ensurepip, venv" >/dev/null 2>&1; then
  apt_pkgs+=(python3-venv)
fi

missing=()
if command -v dpkg-query >/dev/null 2>&1; then
  for p in "${apt_pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "==> installing system packages: ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
      echo "error: need root or sudo to install: ${missing[*]}" >&2; exit 1
    fi
  fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  "$PY" -m venv .venv
fi
VPY=.venv/bin/python
export PIP_DISABLE_PIP_VERSION_CHECK=1
echo "==> installing Python packages"
$VPY -m pip install -q --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
$VPY -m pip install -q "$TORCH_SPEC" 2>&1 | grep -v "^WARNING: Location" || true
# The constraint keeps pip from replacing the CPU torch with a multi-GB CUDA build.
echo "$TORCH_SPEC" > .venv/torch-constraint.txt
# train: the training toolkit the app's Train tab runs (datasets, accelerate);
# --dev: the tests, and the cluster extra (the tests run analyze --ray on a local two-node cluster)
extras="[train]"
[ "$DEV" = 1 ] && extras="[train,dev,cluster]"
$VPY -m pip install -q -c .venv/torch-constraint.txt -e ".$extras" 2>&1 | grep -v "^WARNING: Location" || true
$VPY -c "import torch, transformers, speechint_desktop, datasets, accelerate" || { echo "error: Python packages failed to install" >&2; exit 1; }

echo "==> preparing the bundled model (tiny.en)"
.venv/bin/speechint models install tiny.en
echo "==> ready"
