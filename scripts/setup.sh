#!/usr/bin/env bash
# Sets up ./.venv with sdf-autodec (editable) and its test tools. Safe to re-run.
# Needs only Python >= 3.11 with pip and venv; no GPU, no root, no system libraries.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv || { echo "setup: '$PYTHON -m venv' failed; on Debian/Ubuntu install python3-venv" >&2; exit 1; }
fi
PIP=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)
# torch first, pinned: a bare `torch` (or a range) asked for before it pulls the CUDA build (several GB).
"${PIP[@]}" torch==2.13.0
"${PIP[@]}" -e ".[dev]"

# open3d's Linux wheel links the system library libusb-1.0. Where the system lacks it, the
# libusb-package wheel (a dependency) ships a copy that sdf_autodec.optional preloads: check it works.
if ! .venv/bin/python -c "from sdf_autodec.optional import open3d; open3d()" 2>/tmp/sdf_autodec_open3d.err; then
  echo "setup: open3d does not import: $(tail -n 1 /tmp/sdf_autodec_open3d.err)" >&2
  echo "setup: on Debian/Ubuntu, 'apt-get install libusb-1.0-0' provides the missing system library" >&2
  exit 1
fi
echo "setup: ready (.venv/bin/sdf-autodec)"
