#!/usr/bin/env bash
# Run the main job: napari with the plugin, the bundled sample and a first scribble.
# Without a display it runs the headless demo instead and writes masks and an overlay
# picture to out/demo (or pass --headless DIR yourself).
set -euo pipefail
cd "$(dirname "$0")"
scripts/bootstrap.sh
VENV="${NAPARI_IPNET_VENV:-.venv}"
if [ $# -eq 0 ] && [ -z "${DISPLAY:-}" ] && [ -z "${WAYLAND_DISPLAY:-}" ] && [ "$(uname)" != "Darwin" ]; then
  echo "[demo] no display: running the headless demo (outputs in out/demo)"
  exec "$VENV/bin/napari-ipnet" demo --headless out/demo
fi
exec "$VENV/bin/napari-ipnet" demo "$@"
