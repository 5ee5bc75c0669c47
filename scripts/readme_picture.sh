#!/usr/bin/env bash
# Regenerates docs/demo.png, the README's picture, from the demo's own output:
#   .venv/bin/sdf-autodec demo output=demo_out && bash scripts/readme_picture.sh demo_out
set -euo pipefail
cd "$(dirname "$0")/.."
DEMO=${1:-demo_out}
[ -d "$DEMO/completed" ] || { echo "readme_picture: $DEMO/completed not found: run '.venv/bin/sdf-autodec demo output=$DEMO' first" >&2; exit 2; }
.venv/bin/sdf-autodec render input="$DEMO/completed" gt="$DEMO/data" reconstructed="$DEMO/reconstructed" \
  output="$DEMO/pictures" view.size=176 sheet=docs/demo.png sheet_shapes=4 progress=false
