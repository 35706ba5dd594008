#!/usr/bin/env bash
# Run the whole test suite (sets itself up first: venv, packages, Xvfb libraries).
set -euo pipefail
cd "$(dirname "$0")"
scripts/bootstrap.sh
exec "${NAPARI_IPNET_VENV:-.venv}/bin/python" -m pytest tests "$@"
