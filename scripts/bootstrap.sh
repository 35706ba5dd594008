#!/usr/bin/env bash
# Set up everything needed to run napari-ipnet from this checkout (idempotent):
# Debian packages for Qt under Xvfb (when missing), a virtual environment, and the
# package with its test extras. Re-runs are fast: nothing is reinstalled unless
# pyproject.toml or the constraints changed.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${NAPARI_IPNET_VENV:-.venv}"
PY="${PYTHON:-python3}"

APT_PACKAGES="xvfb libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0 libxcb-xinerama0 \
libxcb-cursor0 libxcb-shape0 libxkbcommon-x11-0 libgl1 libegl1 libdbus-1-3 libfontconfig1 libglib2.0-0"
missing=""
if command -v dpkg >/dev/null 2>&1; then
  for pkg in $APT_PACKAGES; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing="$missing $pkg"
  done
fi
if [ -n "$missing" ]; then
  echo "[bootstrap] installing Debian packages:$missing"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "[bootstrap] creating $VENV"
  "$PY" -m venv "$VENV"
fi
stamp="$VENV/.napari-ipnet-$(cat pyproject.toml ci/constraints.txt | sha1sum | cut -c1-12)"
if [ ! -f "$stamp" ]; then
  echo "[bootstrap] installing napari-ipnet and its test dependencies (a few minutes the first time)"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -c ci/constraints.txt torch
  "$VENV/bin/python" -m pip install -q -c ci/constraints.txt -e ".[testing]"
  rm -f "$VENV"/.napari-ipnet-*
  touch "$stamp"
fi
